import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The HTTP port ops scrape and probe: `/metrics` (Prometheus text), `/healthz` (the process is serving),
/// `/readyz` (a model is loaded and the consumer runs).
public final class StatusServer: Service, Sendable {
    /// Renders the Prometheus exposition text.
    public typealias MetricsRenderer = @Sendable () -> [UInt8]
    /// Nil when ready, else the reason it is not.
    public typealias ReadinessCheck = @Sendable () -> String?

    private let host: String
    private let port: Int
    private let renderMetrics: MetricsRenderer
    private let readiness: ReadinessCheck
    private let logger: Logger

    public init(host: String = "0.0.0.0", port: Int, logger: Logger,
                renderMetrics: @escaping MetricsRenderer, readiness: @escaping ReadinessCheck) {
        self.host = host
        self.port = port
        self.logger = logger
        self.renderMetrics = renderMetrics
        self.readiness = readiness
    }

    public func run() async throws {
        let renderMetrics = renderMetrics
        let readiness = readiness
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(StatusHandler(renderMetrics: renderMetrics, readiness: readiness))
                }
            }
            .bind(host: host, port: port).get()
        logger.info("status server listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

private final class StatusHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let renderMetrics: StatusServer.MetricsRenderer
    private let readiness: StatusServer.ReadinessCheck

    init(renderMetrics: @escaping StatusServer.MetricsRenderer, readiness: @escaping StatusServer.ReadinessCheck) {
        self.renderMetrics = renderMetrics
        self.readiness = readiness
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let (status, contentType, body): (HTTPResponseStatus, String, [UInt8])
        switch (request.method, path) {
        case (.GET, "/metrics"):
            (status, contentType, body) = (.ok, "text/plain; version=0.0.4", renderMetrics())
        case (.GET, "/healthz"):
            (status, contentType, body) = (.ok, "text/plain", Array("ok\n".utf8))
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
