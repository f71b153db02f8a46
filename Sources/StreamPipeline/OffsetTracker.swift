import DequeModule

/// Tracks one partition's events between consumption and acknowledgement of their output.
///
/// Offsets are registered in consumption order; acknowledgements may arrive in any order (the producer
/// reports per output partition). The committable offset only advances over a contiguous run of
/// acknowledged events, so a commit never covers an event whose result or dead-letter record the broker
/// has not confirmed.
public struct OffsetTracker: Sendable {
    private var pending: Deque<(offset: Int64, acknowledged: Bool)> = []
    /// Offset of the next event to read after everything acknowledged so far: what a commit carries.
    public private(set) var committable: Int64?
    /// The last offset committed to the broker, to skip commits that would change nothing.
    public private(set) var committed: Int64?

    public init() {}

    /// Events registered but not yet covered by `committable`.
    public var inFlight: Int { pending.count }

    /// Notes an event entering the pipeline. Offsets must increase.
    public mutating func register(_ offset: Int64) {
        precondition(pending.last.map { $0.offset < offset } ?? true, "offsets must be registered in order")
        pending.append((offset, false))
    }

    /// Marks an event's output as acknowledged by the broker.
    /// - Returns: false when the offset was not in flight (already acknowledged, or never registered).
    @discardableResult
    public mutating func acknowledge(_ offset: Int64) -> Bool {
        guard let first = pending.first, offset >= first.offset else { return false }
        // Outputs are mostly acknowledged in order, so the search rarely looks past the front.
        guard let index = pending.firstIndex(where: { $0.offset == offset }), !pending[index].acknowledged else {
            return false
        }
        pending[index].acknowledged = true
        while let front = pending.first, front.acknowledged {
            committable = front.offset + 1
            pending.removeFirst()
        }
        return true
    }

    /// The offset to commit now, if it moved since the last commit.
    public var nextCommit: Int64? {
        guard let committable, committable != committed else { return nil }
        return committable
    }

    /// Records that `offset` was committed.
    public mutating func markCommitted(_ offset: Int64) {
        committed = max(committed ?? offset, offset)
    }

    /// Forgets every in-flight event: the partition was lost and another member will redo the work.
    public mutating func drop() {
        pending.removeAll()
    }
}
