/// Reusable activation memory for one inference session (one shard, one thread at a time).
///
/// Each role has its own buffer that only ever grows, so after the first few batches a forward pass
/// allocates nothing. A view handed out for a role stays valid until that role is requested again.
/// Buffers hold `RowPadding.rows(for: rows)` rows, the contract `ComputeKernels.linear` relies on.
final class Workspace {
    enum Role: CaseIterable {
        /// The residual stream [tokens × hidden].
        case hidden
        /// Query, key and value of every token side by side [tokens × 3·hidden].
        case queryKeyValue
        /// Attention heads' outputs side by side [tokens × hidden].
        case context
        /// Feed-forward inner activations [tokens × intermediate].
        case intermediate
        /// Head inputs and outputs: one row per text, or per token for token classification.
        case headInput, headHidden, logits
    }

    private var buffers: [Role: UnsafeMutableBufferPointer<Float>] = [:]

    deinit {
        for buffer in buffers.values { buffer.deallocate() }
    }

    /// A `rows × columns` matrix backed by `role`'s buffer (contents unspecified).
    func matrix(_ role: Role, rows: Int, columns: Int) -> MatrixView {
        let needed = max(RowPadding.rows(for: rows) * columns, 1)
        let buffer: UnsafeMutableBufferPointer<Float>
        if let existing = buffers[role], existing.count >= needed {
            buffer = existing
        } else {
            buffers[role]?.deallocate()
            buffer = .allocate(capacity: needed)
            buffer.initialize(repeating: 0)
            buffers[role] = buffer
        }
        // `allocate` guarantees a base address for a positive capacity.
        return MatrixView(base: buffer.baseAddress.unsafelyUnwrapped, rows: rows, columns: columns)
    }
}
