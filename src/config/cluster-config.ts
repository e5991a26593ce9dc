import { isIP } from 'node:net';
import { address, arrayOf, bool, dnsLabel, duration, either, enumOf, int, literal, num, object, optional, port, refine, section, str, transform, type Infer } from './shape.js';
import { API_VERSION, metadataShape, trustDomain } from './federation-config.js';

function addressOrCidrProblem(value: string): string | undefined {
  const [base, bits, extra] = value.split('/');
  const family = isIP(base ?? '');
  if (family === 0 || extra !== undefined) return `"${value}" is not an IP address or CIDR block`;
  if (bits === undefined) return undefined;
  const n = Number(bits);
  const max = family === 4 ? 32 : 128;
  return /^\d+$/.test(bits) && n <= max ? undefined : `"${value}": prefix length must be 0-${max}`;
}

export const PROTOCOLS = ['http', 'http2', 'grpc', 'tcp'] as const;

const endpointObject = object({
  address: str({ minLength: 1 }),
  ready: optional(bool(), true),
});

/** A local endpoint: "10.0.0.7" or { address: 10.0.0.7, ready: false }. */
const endpointShape = either(
  transform(str({ minLength: 1 }), (address) => ({ address, ready: true })),
  endpointObject,
  (value) => (typeof value === 'string' ? 'first' : 'second'),
);

export const exportPortShape = object({
  /** Port name, unique within the export (`http`, `grpc`). */
  name: dnsLabel(),
  /** Port clients use in the clusterset name (`payments.default.svc.clusterset.local:8080`). */
  port: port(),
  /** Port of the local endpoints; defaults to `port`. */
  targetPort: optional(port()),
  protocol: enumOf(PROTOCOLS),
});

export const exportShape = object({
  service: dnsLabel(),
  namespace: optional(dnsLabel(), 'default'),
  ports: arrayOf(exportPortShape, { minItems: 1, uniqueBy: (p) => p.name, uniqueMessage: 'port name used twice' }),
  endpoints: optional(arrayOf(endpointShape), []),
  /** Clusters allowed to consume this export; empty means every cluster of the federation. */
  consumers: optional(arrayOf(dnsLabel(), { uniqueBy: (c) => c }), []),
});

export const clusterShape = object({
  apiVersion: literal(API_VERSION),
  kind: literal('Cluster'),
  metadata: metadataShape,
  spec: object({
    region: str({ minLength: 1, pattern: /^[a-z0-9][a-z0-9-]*$/, patternMessage: 'must be lower-case letters, digits and "-"' }),
    zone: str({ minLength: 1, pattern: /^[a-z0-9][a-z0-9-]*$/, patternMessage: 'must be lower-case letters, digits and "-"' }),
    trustDomain: trustDomain(),
    /** Directory of this cluster's CA in Kubernetes secret layout (tls.crt, tls.key, ca.crt). */
    pkiDir: optional(str({ minLength: 1 })),
    gateway: section({
      /** Inbound mTLS listener for other clusters' gateways. */
      inbound: optional(address(), '0.0.0.0:15443'),
      /** Addresses other gateways dial; defaults to `inbound`. */
      advertise: optional(arrayOf(address(), { minItems: 1 })),
      /** Outbound listener for local clients (HTTP/1.1 and h2c). */
      outbound: optional(address(), '0.0.0.0:15001'),
      admin: optional(address(), '0.0.0.0:15021'),
      /** Where the last applied snapshot is kept for static stability. */
      stateDir: optional(str({ minLength: 1 })),
      certificateTtl: optional(duration({ min: 60_000 })),
      /**
       * Where the gateway's certificate comes from. `local`: issued in this process from the CA in
       * `spec.pkiDir` (the demo, tests, a host that keeps its CA). `signer`: requested from the
       * cluster's signer (`fedgate ca serve`, see `signer`), so the CA key is never in the gateway.
       */
      certificateSource: optional(enumOf(['local', 'signer'] as const), 'local'),
      /** The cluster's certificate signer; required with `certificateSource: signer`. */
      signer: optional(
        object({
          /** host:port of `fedgate ca serve`. */
          address: address(),
          /** PEM file with this cluster's CA certificate(s) (public, no key): how the signer is recognised. */
          caFile: str({ minLength: 1 }),
          /**
           * Bearer credential, re-read at every request: a projected ServiceAccount token bound to the
           * signer's audience (Kubernetes), or a one-time bootstrap token (`fedgate ca signer-token create`).
           */
          tokenFile: optional(str({ minLength: 1 })),
        }),
      ),
      /** Protection of the listeners against slow or oversized clients. */
      limits: section({
        /** Time a client has to send a request's headers (slowloris). */
        headersTimeout: optional(duration({ min: 100 }), 10_000),
        /** Time a client has to send a whole request; 0 disables it (long uploads, streams). */
        requestTimeout: optional(duration(), 300_000),
        /** Largest request header block; larger gets 431. */
        maxHeaderBytes: optional(int({ min: 1024, max: 1024 * 1024 }), 16 * 1024),
        /** Idle connections are closed after this long. */
        idleTimeout: optional(duration({ min: 1000 }), 300_000),
        /** TLS handshakes must finish within this time. */
        handshakeTimeout: optional(duration({ min: 100 }), 10_000),
        /** Concurrent HTTP/2 streams per peer connection. */
        maxConcurrentStreams: optional(int({ min: 1, max: 100_000 }), 1000),
        /**
         * Connections each listener (inbound, outbound) holds at once; at the limit the idlest one
         * (an anonymous one first) is closed to make room, and only when all are busy is a new one
         * refused. Keep it well below the process's file-descriptor limit.
         */
        maxConnections: optional(int({ min: 16, max: 1_000_000 }), 4096),
        /** Connections the gateways of one peer cluster hold on the inbound listener. */
        maxConnectionsPerPeer: optional(int({ min: 1, max: 100_000 }), 64),
        /** Limits of every HTTP/2 connection (docs/security.md has the table). */
        http2: refine(
          section({
            /** Bytes queued for a peer that does not read, from which the connection stops producing. */
            writeQueueBytes: optional(int({ min: 16 * 1024 }), 1024 * 1024),
            /** Bytes queued past which the connection is ended at once (GOAWAY ENHANCE_YOUR_CALM). */
            writeQueueHardLimitBytes: optional(int({ min: 16 * 1024 }), 4 * 1024 * 1024),
            /** How long the write queue may stay full before the connection is ended. */
            writeStallTimeout: optional(duration({ min: 100 }), 30_000),
            /** Outgoing bytes one stream may buffer before it is reset. */
            streamBufferBytes: optional(int({ min: 16 * 1024 }), 1024 * 1024),
            /** A stream with data and no flow-control window for this long is reset. */
            zeroWindowTimeout: optional(duration({ min: 100 }), 30_000),
            /** Entries one SETTINGS frame may carry. */
            maxSettingsEntries: optional(int({ min: 6, max: 1000 }), 32),
            /** SETTINGS frames accepted in a burst, then per second. */
            settingsBurst: optional(int({ min: 1 }), 20),
            settingsRatePerSecond: optional(num({ min: 0.1 }), 5),
            /** PING frames accepted in a burst while no data flows, then per second. */
            pingBurst: optional(int({ min: 1 }), 100),
            pingRatePerSecond: optional(num({ min: 0.1 }), 10),
            /** Streams a client may reset before they are answered (rapid reset), in a burst, then per second. */
            resetBurst: optional(int({ min: 1 }), 1000),
            resetRatePerSecond: optional(num({ min: 0.1 }), 200),
          }),
          // Checked here, not first by the HTTP/2 stack: there it threw on the first connection
          // and took the gateway down.
          (h2) => (h2.writeQueueHardLimitBytes < h2.writeQueueBytes ? `writeQueueHardLimitBytes (${h2.writeQueueHardLimitBytes}) must be at least writeQueueBytes (${h2.writeQueueBytes})` : undefined),
        ),
      }),
      /** What this cluster's gateway accepts from the federation's policy set. */
      policies: section({
        /**
         * When false, a policy set with a FaultPolicy that applies to this cluster is refused
         * (NACKed, shown by `fedgate status`) and the last good set stays in force.
         */
        allowFaultInjection: optional(bool(), true),
      }),
      /**
       * Identities of local callers of the outbound listener, by source address or CIDR block:
       * requests from them cross to other clusters as spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.
       * Others carry the gateway's own identity.
       */
      callers: optional(
        arrayOf(
          object({
            address: refine(str({ minLength: 1 }), (value) => addressOrCidrProblem(value)),
            namespace: dnsLabel(),
            serviceAccount: dnsLabel(),
          }),
        ),
        [],
      ),
      /** One local listener per imported TCP service. */
      tcpImports: optional(
        arrayOf(
          object({
            service: str({ pattern: /^[a-z0-9-]+\.[a-z0-9-]+$/, patternMessage: 'must be "name.namespace"' }),
            port: port(),
            listen: address(),
          }),
        ),
        [],
      ),
    }),
    /** The federation controller; absent means a static federation read from federation-config. */
    controller: optional(
      object({
        /** Join endpoint of the controller. */
        address: address(),
        /** File holding the join token (`fedgate token create`). */
        tokenFile: optional(str({ minLength: 1 })),
      }),
    ),
    discovery: section({
      mode: optional(enumOf(['file', 'kubernetes'] as const), 'file'),
      kubernetes: optional(
        object({
          kubeconfig: optional(str({ minLength: 1 })),
          context: optional(str({ minLength: 1 })),
          /** Namespaces to watch; empty means all. */
          namespaces: optional(arrayOf(dnsLabel()), []),
        }),
      ),
    }),
    exports: optional(
      arrayOf(exportShape, { uniqueBy: (e) => `${e.namespace}/${e.service}`, uniqueMessage: 'service exported twice' }),
      [],
    ),
  }),
});

export type ClusterFileConfig = Infer<typeof clusterShape>;
export type ExportConfig = Infer<typeof exportShape>;

export type ClusterConfig = ClusterFileConfig & {
  readonly file: string;
  readonly pkiDir: string;
  readonly stateDir: string;
};
