import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The HTTP port ops scrape and probe: `/metrics` (Prometheus text), `/healthz` (every part of the service
/// makes progress), `/readyz` (a model is loaded, the consumer runs, the cluster answers and publishing is
/// not stalled on retries).
///
/// Each connection serves one request and is closed; a client that has not sent its request within
/// `readTimeout` is disconnected, and connections beyond `maxConnections` are refused at once, so slow or
/// numerous clients cannot starve the probes.
public final class StatusServer: Service, Sendable {
    /// Renders the Prometheus exposition text.
    public typealias MetricsRenderer = @Sendable () -> [UInt8]
    /// Nil when the check passes, else the reason it does not.
    public typealias Check = @Sendable () -> String?
    public typealias ReadinessCheck = Check

    public struct Limits: Sendable {
        /// Longest a client may take to send its request.
        public var readTimeout = TimeAmount.seconds(5)
        /// Connections served at once; more are closed on accept.
        public var maxConnections = 64

        public init() {}
    }

    private let host: String
    private let port: Int
    private let limits: Limits
    private let renderMetrics: MetricsRenderer
    private let readiness: Check
    private let liveness: Check
    private let logger: Logger
    private let boundAddress = Mutex<SocketAddress?>(nil)
    private let openConnections = ManagedAtomic(0)

    public init(host: String = "0.0.0.0", port: Int, limits: Limits = Limits(), logger: Logger,
                renderMetrics: @escaping MetricsRenderer, readiness: @escaping Check,
                liveness: @escaping Check = { nil }) {
        self.host = host
        self.port = port
        self.limits = limits
        self.logger = logger
        self.renderMetrics = renderMetrics
        self.readiness = readiness
        self.liveness = liveness
    }

    /// The address the server listens on once running (the actual port when started with port 0).
    public var localAddress: SocketAddress? { boundAddress.withLock { $0 } }

    /// Connections accepted and not yet closed (refused ones excluded).
    public var connectionCount: Int { openConnections.value }

    /// The port listened on once running.
    public var localPort: Int? { localAddress?.port }

    public func run() async throws {
        let renderMetrics = renderMetrics
        let readiness = readiness
        let liveness = liveness
        let limits = limits
        let open = openConnections
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                if open.add(1) > limits.maxConnections {
                    open.subtract(1)
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.subtract(1) }
                // The read timeout, for the whole request: a slow client (even one trickling bytes) is
                // disconnected; a served connection is closed long before.
                channel.eventLoop.scheduleTask(in: limits.readTimeout) { channel.close(promise: nil) }
                return channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(StatusHandler(renderMetrics: renderMetrics, readiness: readiness,
                                                              liveness: liveness))
                }
            }
            .bind(host: host, port: port).get()
        boundAddress.withLock { $0 = channel.localAddress }
        logger.info("status server listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        // Ends on graceful shutdown and on cancellation alike: a service group cancels its services when one
        // of them fails, and a server still waiting for its channel to close would keep the process alive.
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await channel.closeFuture.get()
            } onGracefulShutdown: {
                channel.close(promise: nil)
            }
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}

/// A counter shared by the event loops (Synchronization's Atomic cannot be captured by escaping closures).
private final class ManagedAtomic: Sendable {
    private let counter: Atomic<Int>

    init(_ initial: Int) {
        counter = Atomic(initial)
    }

    var value: Int { counter.load(ordering: .relaxed) }

    /// Returns the new value.
    func add(_ amount: Int) -> Int {
        counter.add(amount, ordering: .relaxed).newValue
    }

    func subtract(_ amount: Int) {
        counter.subtract(amount, ordering: .relaxed)
    }
}

private final class StatusHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let renderMetrics: StatusServer.MetricsRenderer
    private let readiness: StatusServer.Check
    private let liveness: StatusServer.Check

    init(renderMetrics: @escaping StatusServer.MetricsRenderer, readiness: @escaping StatusServer.Check,
         liveness: @escaping StatusServer.Check) {
        self.renderMetrics = renderMetrics
        self.readiness = readiness
        self.liveness = liveness
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let (status, contentType, body): (HTTPResponseStatus, String, [UInt8])
        switch (request.method, path) {
        case (.GET, "/metrics"):
            (status, contentType, body) = (.ok, "text/plain; version=0.0.4", renderMetrics())
        case (.GET, "/healthz"):
            if let reason = liveness() {
                (status, contentType, body) = (.serviceUnavailable, "text/plain", Array("unhealthy: \(reason)\n".utf8))
            } else {
                (status, contentType, body) = (.ok, "text/plain", Array("ok\n".utf8))
            }
        case (.GET, "/readyz"):
            if let reason = readiness() {
                (status, contentType, body) = (.serviceUnavailable, "text/plain", Array("not ready: \(reason)\n".utf8))
            } else {
                (status, contentType, body) = (.ok, "text/plain", Array("ready\n".utf8))
            }
        default:
            (status, contentType, body) = (.notFound, "text/plain",
                                           Array("not found; try /metrics, /healthz or /readyz\n".utf8))
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.count)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
                      promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
