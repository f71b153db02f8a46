/// Runs `operation`, for no longer than `timeout`.
///
/// The one way this package bounds a wait: the operation and a timer race as children of a task group, and
/// whichever ends first decides.
///
/// - Returns: the operation's value, or `nil` when `timeout` passed first. The operation is then cancelled
///   and awaited, so it must end on cancellation (a continuation it waits on needs a cancellation handler
///   that resumes it).
/// - Throws: what the operation throws, or `CancellationError` when the calling task is cancelled.
public func withTimeout<Value: Sendable>(_ timeout: Duration,
                                         _ operation: @escaping @Sendable () async throws -> Value) async throws -> Value? {
    try await withThrowingTaskGroup(of: Value?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
}
