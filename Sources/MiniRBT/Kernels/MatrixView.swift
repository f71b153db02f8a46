/// A row-major window onto float32 memory owned elsewhere (a workspace buffer).
///
/// Views let the encoder name "the query rows of sequence 3, columns of head 5" without copying:
/// slicing only moves the base pointer and keeps the parent's row stride, which is exactly what a
/// GEMM's leading dimension expects.
package struct MatrixView {
    package let base: UnsafeMutablePointer<Float>
    package let rows: Int
    package let columns: Int
    /// Distance in elements between the starts of consecutive rows (≥ `columns`).
    package let rowStride: Int

    package init(base: UnsafeMutablePointer<Float>, rows: Int, columns: Int, rowStride: Int? = nil) {
        let stride = rowStride ?? columns
        precondition(rows >= 0 && columns >= 0 && stride >= columns, "invalid matrix view \(rows)×\(columns) stride \(stride)")
        self.base = base
        self.rows = rows
        self.columns = columns
        self.rowStride = stride
    }

    /// The rows in `range`, all columns.
    package func rows(_ range: Range<Int>) -> MatrixView {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) outside 0..<\(rows)")
        return MatrixView(base: base + range.lowerBound * rowStride, rows: range.count, columns: columns, rowStride: rowStride)
    }

    /// The columns in `range`, all rows.
    package func columns(_ range: Range<Int>) -> MatrixView {
        precondition(range.lowerBound >= 0 && range.upperBound <= columns, "columns \(range) outside 0..<\(columns)")
        return MatrixView(base: base + range.lowerBound, rows: rows, columns: range.count, rowStride: rowStride)
    }

    /// Row `index` as a buffer of `columns` elements.
    package func row(_ index: Int) -> UnsafeMutableBufferPointer<Float> {
        precondition(index >= 0 && index < rows, "row \(index) outside 0..<\(rows)")
        return UnsafeMutableBufferPointer(start: base + index * rowStride, count: columns)
    }

    /// The values row by row (for results and tests; the forward pass never copies views).
    package func toArray() -> [Float] {
        var values: [Float] = []
        values.reserveCapacity(rows * columns)
        for index in 0..<rows { values.append(contentsOf: row(index)) }
        return values
    }

    /// Moves rows `sources` (ascending) to rows `0..<sources.count`, in place, and returns those rows.
    ///
    /// In place is safe because `sources[i] ≥ i`: each destination row is either its own source or a row
    /// whose source was read before, and no later source is written over.
    package func compactingRows(_ sources: [Int]) -> MatrixView {
        for (destination, source) in sources.enumerated() where destination != source {
            precondition(source > destination && source < rows, "rows \(sources) cannot be compacted in 0..<\(rows)")
            _ = row(destination).update(fromContentsOf: row(source))
        }
        return rows(0..<sources.count)
    }
}
