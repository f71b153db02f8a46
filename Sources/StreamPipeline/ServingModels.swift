import ModelControl
import Synchronization

/// The models a batch runs with, taken once per batch so a swap never splits a batch.
public struct ModelSelection: Sendable {
    public var primary: LoadedModel
    public var candidate: LoadedModel?
    public var mode: ServingMode

    /// The model that answers an event with this key in canary mode, else the primary.
    public func model(forKey key: [UInt8]?) -> LoadedModel {
        guard case .canary(let percent) = mode, let candidate else { return primary }
        return CanaryBucket.of(key) < percent ? candidate : primary
    }

    /// The model whose results are published to the shadow topic, if any.
    public var shadow: LoadedModel? {
        guard case .shadow = mode else { return nil }
        return candidate
    }
}

/// Key → bucket in 0..<100, stable across replicas and restarts (FNV-1a, not Swift's seeded hasher).
public enum CanaryBucket {
    public static func of(_ key: [UInt8]?) -> Int {
        Int(StableHash.fnv1a(key ?? []) % 100)
    }
}

/// A hash that is the same in every process, replica and restart (Swift's `Hasher` is seeded per process):
/// what canary buckets and the teacher's sample are drawn from.
public enum StableHash {
    /// 64-bit FNV-1a.
    public static func fnv1a(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }
}

/// The current model handle(s) behind one lock. Shards take a ``ModelSelection`` once per batch; a swap
/// replaces the reference, batches already running finish on the models they took, and an old model is
/// freed when the last batch using it ends (reference counting does the rest).
public final class ServingModels: Sendable {
    private let state: Mutex<ModelSelection>

    public init(primary: LoadedModel) {
        state = Mutex(ModelSelection(primary: primary, candidate: nil, mode: .single))
    }

    public var current: ModelSelection { state.withLock { $0 } }

    /// Replaces the whole selection at once, so no batch sees a new primary without its candidate.
    public func serve(_ selection: ModelSelection) {
        state.withLock { $0 = selection }
    }

    /// Serves `candidate` beside the primary, in canary or shadow mode.
    public func trial(_ candidate: LoadedModel, mode: ServingMode) {
        state.withLock {
            $0.candidate = candidate
            $0.mode = mode
        }
    }
}
