/** Where a cluster runs. Failover prefers the nearest locality. */
export interface Locality {
  region: string;
  zone: string;
  cluster: string;
}

/**
 * Distance between two localities, coarsest difference wins: 0 same cluster, 1 same zone,
 * 2 same region, 3 another region.
 */
export function localityDistance(from: Locality, to: Locality): 0 | 1 | 2 | 3 {
  if (from.cluster === to.cluster) return 0;
  if (from.region === to.region && from.zone === to.zone) return 1;
  if (from.region === to.region) return 2;
  return 3;
}
