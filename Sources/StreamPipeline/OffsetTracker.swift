import DequeModule

/// Tracks one partition's events between consumption and acknowledgement of their output.
///
/// Offsets are registered in consumption order; acknowledgements may arrive in any order (the producer
/// reports per output partition). The committable offset only advances over a contiguous run of
/// acknowledged events, so a commit never covers an event whose result or dead-letter record the broker
/// has not confirmed.
///
/// Offsets normally increase. When one does not (the log was truncated, or `auto.offset.reset` moved the
/// position back after OFFSET_OUT_OF_RANGE), the tracker starts a new *generation*: it forgets the events
/// in flight (they are consumed again, or no longer exist) and the offsets it computed, and follows the new
/// numbering. Acknowledgements carry the generation they were registered in, so a late acknowledgement of
/// an old event can never mark a new event with the same offset.
public struct OffsetTracker: Sendable {
    private struct Entry: Sendable {
        var offset: Int64
        var acknowledged: Bool
    }

    private var pending: Deque<Entry> = []
    private var lastRegistered: Int64?
    /// The first offset registered in this generation.
    private var firstRegistered: Int64?
    /// Offset of the next event to read after everything acknowledged so far: what a commit carries.
    public private(set) var committable: Int64?
    /// The last offset committed to the broker, to skip commits that would change nothing.
    public private(set) var committed: Int64?
    /// Bumped whenever offsets restarted at or below one already registered.
    public private(set) var generation: UInt64 = 0

    public init() {}

    /// Events registered but not yet covered by `committable`.
    public var inFlight: Int { pending.count }

    /// Notes an event entering the pipeline.
    /// - Returns: the generation to acknowledge it with.
    @discardableResult
    public mutating func register(_ offset: Int64) -> UInt64 {
        if let lastRegistered, offset <= lastRegistered {
            pending.removeAll()
            committable = nil
            committed = nil
            firstRegistered = nil
            generation &+= 1
        }
        if firstRegistered == nil { firstRegistered = offset }
        lastRegistered = offset
        pending.append(Entry(offset: offset, acknowledged: false))
        return generation
    }

    /// Marks an event's output as acknowledged by the broker. O(log n): registered offsets increase.
    /// `generation` is the one `register` returned (nil: the current one).
    /// - Returns: false when the offset was not in flight (already acknowledged, never registered, or of an
    ///   older generation).
    @discardableResult
    public mutating func acknowledge(_ offset: Int64, generation: UInt64? = nil) -> Bool {
        guard (generation ?? self.generation) == self.generation, let index = index(of: offset), !pending[index].acknowledged else {
            return false
        }
        pending[index].acknowledged = true
        while let front = pending.first, front.acknowledged {
            // Checked: an offset of Int64.max (a broken broker) must not trap.
            committable = front.offset == .max ? .max : front.offset + 1
            pending.removeFirst()
        }
        return true
    }

    /// Binary search over the pending offsets, which strictly increase.
    private func index(of offset: Int64) -> Int? {
        var low = 0
        var high = pending.count
        while low < high {
            let middle = low + (high - low) / 2
            if pending[middle].offset < offset { low = middle + 1 } else { high = middle }
        }
        return low < pending.count && pending[low].offset == offset ? low : nil
    }

    /// The offset to commit now, if it moved since the last commit.
    public var nextCommit: Int64? {
        guard let committable, committable != committed else { return nil }
        return committable
    }

    /// Records that `offset`, taken from `nextCommit` in `generation`, was committed.
    public mutating func markCommitted(_ offset: Int64, generation: UInt64? = nil) {
        guard (generation ?? self.generation) == self.generation else { return }
        committed = max(committed ?? offset, offset)
    }

    /// Where to read again to redo everything not committed: the last committed offset, else the first
    /// offset registered. Nil when nothing was registered since the last commit.
    public var rewindTarget: Int64? {
        guard let lastRegistered else { return nil }
        if let committed { return lastRegistered >= committed ? committed : nil }
        return firstRegistered
    }

    /// Forgets everything since the last commit (an aborted transaction): in-flight events, acknowledged but
    /// uncommitted ones, and the numbering, in a new generation so late acknowledgements are ignored. The
    /// partition is then read again from `rewindTarget`.
    public mutating func rewind() {
        pending.removeAll()
        committable = committed
        lastRegistered = nil
        firstRegistered = nil
        generation &+= 1
    }
}
