import Dispatch
import Foundation
import Synchronization

/// A value delivered once, from any thread, to any number of async waiters.
///
/// Bridges librdkafka callbacks (which run on the poll thread) to `async` callers without a task per wait.
final class Promise<Value: Sendable>: Sendable {
    private enum State {
        case pending([CheckedContinuation<Value, Never>])
        case fulfilled(Value)
    }

    private let state = Mutex(State.pending([]))

    init() {}

    /// Delivers `value` to current and future waiters. Later calls are ignored: the first outcome wins.
    func fulfill(_ value: Value) {
        let waiters: [CheckedContinuation<Value, Never>] = state.withLock { state in
            guard case .pending(let waiters) = state else { return [] }
            state = .fulfilled(value)
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    var isFulfilled: Bool {
        state.withLock { if case .fulfilled = $0 { true } else { false } }
    }

    var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let ready: Value? = state.withLock { state in
                    switch state {
                    case .fulfilled(let value):
                        return value
                    case .pending(var waiters):
                        waiters.append(continuation)
                        state = .pending(waiters)
                        return nil
                    }
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

/// Runs librdkafka calls that block (commit, flush, transactions, admin waits) on one private serial queue,
/// so they never occupy a thread of Swift's small cooperative pool.
struct BlockingCallQueue: Sendable {
    private let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label)
    }

    func run<Result: Sendable>(_ body: @escaping @Sendable () throws(KafkaError) -> Result) async throws(KafkaError) -> Result {
        let outcome: Swift.Result<Result, KafkaError> = await withCheckedContinuation { continuation in
            queue.async {
                do throws(KafkaError) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try outcome.get()
    }
}

/// A dedicated OS thread running a poll loop until asked to stop.
///
/// librdkafka's poll calls block for their timeout; running them here keeps the cooperative pool free and
/// avoids busy polling (each iteration blocks inside librdkafka for up to the poll timeout).
final class PollThread: Sendable {
    private let stopFlag = Atomic<Bool>(false)
    private let finished = Promise<Void>()

    /// Starts `loop` on a new thread. `loop` must return soon after `shouldStop()` becomes true.
    init(name: String, loop: @escaping @Sendable (_ shouldStop: @Sendable () -> Bool) -> Void) {
        // The thread retains `self` until the loop returns, so `join` works even if every other owner is gone.
        let thread = Thread { [self] in
            loop { self.isStopRequested }
            self.finished.fulfill(())
        }
        thread.name = name
        thread.start()
    }

    func requestStop() {
        stopFlag.store(true, ordering: .releasing)
    }

    var isStopRequested: Bool { stopFlag.load(ordering: .acquiring) }

    /// Waits until the loop has returned.
    func join() async {
        await finished.value
    }
}
