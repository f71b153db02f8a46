import DequeModule
import Foundation

/// A shard's input queue: filled by the consumer loop, drained in micro-batches by the shard's thread.
///
/// Its capacity is soft: `push` never refuses (a consumed record must not be dropped) but reports when the
/// queue is full, so the caller pauses the shard's partitions at the consumer.
final class WorkQueue<Item>: @unchecked Sendable {
    // NSCondition guards every field below.
    private let condition = NSCondition()
    private var items: Deque<Item> = []
    private var closed = false
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    var depth: Int { condition.withLock { items.count } }

    /// Adds an item. Returns true when the queue has reached its capacity.
    func push(_ item: Item) -> Bool {
        condition.withLock {
            items.append(item)
            condition.signal()
            return items.count >= capacity
        }
    }

    /// Adds an item only when the queue is open and below its capacity: for work that may be skipped
    /// rather than wait. Returns whether it was added.
    func offer(_ item: Item) -> Bool {
        condition.withLock {
            guard !closed, items.count < capacity else { return false }
            items.append(item)
            condition.signal()
            return true
        }
    }

    /// Waits for the next micro-batch: returns as soon as `maxItems` are queued, or `maxWait` after the first
    /// item of the batch was seen, whichever comes first. Returns nil once closed and empty.
    func nextBatch(maxItems: Int, maxWait: Duration) -> [Item]? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !closed { condition.wait() }
        if items.isEmpty { return nil }
        let deadline = Date(timeIntervalSinceNow: maxWait.seconds)
        while items.count < maxItems && !closed {
            if !condition.wait(until: deadline) { break }
        }
        let count = min(maxItems, items.count)
        let batch = Array(items.prefix(count))
        items.removeFirst(count)
        return batch
    }

    /// Removes queued items that match, e.g. those of a lost partition; returns them.
    @discardableResult
    func removeAll(where shouldRemove: (Item) -> Bool) -> [Item] {
        condition.withLock {
            let removed = Array(items.filter(shouldRemove))
            if !removed.isEmpty { items.removeAll(where: shouldRemove) }
            return removed
        }
    }

    /// No more items will come; the worker drains what is queued, then `nextBatch` returns nil.
    func close() {
        condition.withLock {
            closed = true
            condition.broadcast()
        }
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
