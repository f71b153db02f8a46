/// A dense, row-major float32 tensor: the unit in which checkpoints hand weights to the encoder.
///
/// Checkpoint readers widen F16 and BF16 storage to float32 on load, so everything downstream of
/// loading works in one precision.
public struct Tensor: Sendable, Equatable {
    /// Dimensions, outermost first (PyTorch's order).
    public var shape: [Int]
    /// `shape.reduce(1, *)` values in row-major order.
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "tensor of shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        self.shape = shape
        self.values = values
    }

    public var count: Int { values.count }
}
