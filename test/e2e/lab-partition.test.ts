/**
 * Partition drills in the lab: each cluster on its own network namespace and address, the
 * failing cluster cut off by nft DROP rules inside its namespace (no resets), as a regional
 * network outage looks. `east` serves 100% of payments for `edge` at 200 rps; `west` is the
 * failover target. Each direction — both ways, only into east, only out of east — is drilled by
 * the real CLI running in edge's namespace. This suite checks that the partition is real and
 * undone and that the drill reports it truthfully; the figures (detection, 100% failed over, p99
 * and slowest request during the window, failback) are printed, not asserted. What the data plane
 * must achieve under a partition (no request lost, HTTP and gRPC) is lab-partition-objectives.
 */
import { jest } from '@jest/globals';
import { eventually } from '../support/control-plane.js';
import { http1 } from '../support/http-client.js';
import { describeLab, partitionDrill, startPartitionLab, type TestLab } from '../support/lab.js';

jest.setTimeout(240_000);

describeLab('partition drills in the lab (clusters on their own network namespaces)', () => {
  let lab: TestLab;
  const figures: string[] = [];

  beforeAll(async () => {
    lab = await startPartitionLab();
  });

  afterAll(async () => {
    if (figures.length > 0) console.log(`partition drills, HTTP at 200 rps from edge, east serving 100% (today's gateway defaults):\n${figures.map((f) => `  ${f}`).join('\n')}`);
    await lab?.stop();
  });

  for (const direction of ['both', 'in', 'out'] as const) {
    it(`${direction === 'both' ? 'both directions' : `packets ${direction} only`}: east serves nothing while its packets are dropped, serves again once the rules are lifted, and the report says so`, async () => {
      const netns = lab.federation.cluster('east').host.netns;
      const { code, report, stderr, figures: line } = await partitionDrill(lab, direction, 'http');
      figures.push(line);
      expect(stderr).toContain(`drop every packet ${direction === 'both' ? 'into and out of' : direction === 'in' ? 'into' : 'out of'} east's network namespace ${netns} (nft, no resets)`);
      expect(report.plan.failure).toMatchObject({ direction, netns });
      expect(report.plan.failure.rules).toContain(direction === 'out' ? 'oifname != "lo" drop' : 'iifname != "lo" drop');
      if (direction !== 'both') expect(report.plan.failure.rules).not.toContain(direction === 'in' ? 'oifname' : 'iifname');
      expect(report.preflight.map((p) => p.check)).toEqual(['controller', 'cluster edge', 'cluster east', 'service', 'target', 'edge gateway health', 'partition tools', `netns ${netns}`, 'drill lock']);
      // The restored cluster was looked up in the federation's status afterwards (whether status
      // caught up is the controller's and gateway's business: printed with the figures).
      expect(report.postflight.map((p) => p.check)).toEqual(['cluster east after the restore']);
      figures.push(`       post-flight: ${report.postflight[0]?.ok ? 'ok' : 'FAILED'}: ${report.postflight[0]?.detail}`);
      // A verdict that judged something, with the exit code that belongs to it.
      expect(['PASSED', 'FAILED']).toContain(report.verdict);
      expect(code).toBe(report.verdict === 'PASSED' ? 0 : 1);
      expect(report.failover.baselineShareOfFailing).toBeGreaterThan(0.5);
      // The partition is real: no request due while the rules were in place was answered by east
      // (whole timeline bins between the rules going in and coming out).
      const { binMs, bins } = report.timeline;
      const cut = bins.filter((b) => b.startMs >= report.marks.injectedAt && b.startMs + binMs <= report.marks.restoreAt);
      expect(cut.length).toBeGreaterThan(0);
      expect(cut.map((b) => b.servedBy.east ?? 0)).toEqual(cut.map(() => 0));
      // Times are consistent by construction, whatever the data plane made of the partition.
      if (report.failover.firstSuccessElsewhereMs !== null && report.failover.fullFailoverMs !== null) expect(report.failover.firstSuccessElsewhereMs).toBeLessThanOrEqual(report.failover.fullFailoverMs);
      // And undone: the rules are gone (checked by partitionDrill) and east serves edge again.
      const servedBy = (): Promise<unknown> => http1(lab.federation.cluster('edge').outbound, 'payments.default.svc.clusterset.local').then((r) => r.headers['x-fedgate-upstream-cluster'], () => undefined);
      await eventually(async () => (await servedBy()) === 'east', 'east serves payments for edge again', 30_000);
    });
  }
});
