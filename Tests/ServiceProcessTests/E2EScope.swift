import Foundation
import Kafka
import Synchronization

/// Runs `body` with a scope that owns the processes, feeds and readers the test creates, and ends them
/// all when `body` returns or throws: no service process outlives its test.
func withE2EScope<T: Sendable>(_ body: (E2EScope) async throws -> T) async throws -> T {
    let scope = E2EScope()
    do {
        let result = try await body(scope)
        await scope.close()
        return result
    } catch {
        await scope.close()
        throw error
    }
}

/// What one test started; ``close()`` kills its processes and closes its Kafka clients.
final class E2EScope: Sendable {
    private let processes = Mutex<[ServiceProcess]>([])
    private let feeds = Mutex<[EventFeed]>([])
    private let recorders = Mutex<[OutputRecorder]>([])
    private let directories = Mutex<[URL]>([])

    /// Starts `minirbt-stream run …`, inside `namespace` when one is given.
    func stream(_ name: String, _ arguments: [String], environment: [String: String] = [:],
                namespace: NetworkNamespace? = nil) throws -> ServiceProcess {
        let process = try ServiceProcess.stream(name, arguments, environment: environment, namespace: namespace)
        processes.withLock { $0.append(process) }
        return process
    }

    func feed(topic: String, malformedEvery: Int? = nil) throws -> EventFeed {
        let feed = try EventFeed(topic: topic, malformedEvery: malformedEvery)
        feeds.withLock { $0.append(feed) }
        return feed
    }

    /// Starts reading the service's outputs (and `otherTopics`, see ``OutputRecorder``) from the beginning.
    func recorder(results: String, deadLetters: String, otherTopics: [String] = [],
                  isolation: ConsumerConfiguration.IsolationLevel = .readCommitted) async throws -> OutputRecorder {
        let recorder = try await OutputRecorder(resultTopic: results, deadLetterTopic: deadLetters,
                                                otherTopics: otherTopics, isolation: isolation)
        recorders.withLock { $0.append(recorder) }
        return recorder
    }

    /// A new empty directory, removed when the scope closes.
    func temporaryDirectory(_ purpose: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("minirbt-e2e-\(purpose)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        directories.withLock { $0.append(url) }
        return url
    }

    /// The log tails of every process started, for failure messages.
    func logTails(_ lines: Int = 30) -> String {
        processes.withLock { $0 }.map { $0.logTail(lines) }.joined(separator: "\n")
    }

    func close() async {
        for process in processes.withLock({ $0 }) { await process.stop() }
        for feed in feeds.withLock({ $0 }) { await feed.close() }
        for recorder in recorders.withLock({ $0 }) { await recorder.close() }
        for directory in directories.withLock({ $0 }) { try? FileManager.default.removeItem(at: directory) }
    }
}
