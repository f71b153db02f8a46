/// BERT's forward pass, block by block as in transformers' `modeling_bert.py`:
///
///     x = LayerNorm(word[id] + tokenType[type] + position[i])            embeddings
///     for each layer:
///         x = LayerNorm(x + Wo · attention(Wq x, Wk x, Wv x))             attention
///         x = LayerNorm(x + W2 · act(W1 x))                                feedForward
///
/// The batch is packed (see `PackedBatch`): rows are tokens of all texts back to back, so the linear
/// layers see every token at once and attention looks only within one text. Dropout is identity at
/// inference and is left out. The kernels fuse what the formulas allow: Wq, Wk and Wv are one product,
/// and each product's bias, activation or residual sum is applied as it is written.
///
/// A head that reads only `[CLS]` (the pooler) gets the last layer computed for those rows alone after
/// its attention: every row of a layer's output projection and feed-forward block depends on its own
/// row only, so the other rows' work there would be thrown away. That is three quarters of the last
/// layer's arithmetic, about an eighth of a six-layer model's, with the same result for the rows kept.
struct BertEncoder {
    let config: ModelConfig
    let weights: BertWeights
    let kernels: any ComputeKernels

    /// The rows of the last hidden states a head reads.
    enum Readout {
        /// Every token's (token classification, mean pooling, hidden states).
        case everyToken
        /// Each text's first token's, `[CLS]` (the pooler, `[CLS]` embeddings).
        case firstTokens
    }

    /// The last hidden states in `workspace`'s `.hidden` buffer: one row per token of `batch` for
    /// `.everyToken`, one row per text for `.firstTokens`.
    func forward(_ batch: PackedBatch, readout: Readout, workspace: Workspace) -> MatrixView {
        var x = workspace.matrix(.hidden, rows: batch.tokenCount, columns: config.hiddenSize)
        embeddings(batch, into: x)
        for (index, layer) in weights.layers.enumerated() {
            let rowsKept = index == weights.layers.count - 1 ? readout : .everyToken
            x = attention(layer.attention, x, batch: batch, keeping: rowsKept, workspace: workspace)
            feedForward(layer.feedForward, x, workspace: workspace)
        }
        return x
    }

    /// `BertEmbeddings`: (word + token type) + position, then LayerNorm. Positions restart at 0 for each text.
    func embeddings(_ batch: PackedBatch, into x: MatrixView) {
        let hidden = config.hiddenSize
        let table = weights.embeddings
        table.word.withUnsafeBufferPointer { word in
            table.tokenType.withUnsafeBufferPointer { tokenType in
                table.position.withUnsafeBufferPointer { position in
                    for rows in batch.sequences {
                        for row in rows {
                            // PackedBatch has checked every id against the table sizes.
                            let wordRow = Int(batch.tokenIDs[row]) * hidden
                            let typeRow = Int(batch.tokenTypeIDs[row]) * hidden
                            let positionRow = (row - rows.lowerBound) * hidden
                            let out = x.row(row)
                            for column in 0..<hidden {
                                out[column] = (word[wordRow + column] + tokenType[typeRow + column]) + position[positionRow + column]
                            }
                        }
                    }
                }
            }
        }
        kernels.layerNorm(x, table.norm, epsilon: config.layerNormEpsilon)
    }

    /// `BertAttention`: multi-head scaled dot-product self-attention, output projection, residual, LayerNorm.
    /// - Returns: `x`'s rows `keeping` asks for, updated (all of `x` for `.everyToken`).
    func attention(_ weights: AttentionWeights, _ x: MatrixView, batch: PackedBatch, keeping: Readout,
                   workspace: Workspace) -> MatrixView {
        let queryKeyValue = workspace.matrix(.queryKeyValue, rows: x.rows, columns: 3 * config.hiddenSize)
        let context = workspace.matrix(.context, rows: x.rows, columns: config.hiddenSize)
        kernels.linear(x, weights.queryKeyValue, .bias, into: queryKeyValue)
        // Keys are only each text's own tokens, so no padding mask is needed and no row is all-masked.
        kernels.attention(queryKeyValue, sequences: batch.sequences, headCount: config.headCount, into: context)
        // From here on a row depends on itself alone, so the rows no head reads can be left behind.
        let (kept, keptContext): (MatrixView, MatrixView)
        switch keeping {
        case .everyToken:
            (kept, keptContext) = (x, context)
        case .firstTokens:
            let firstRows = batch.sequences.map(\.lowerBound)
            (kept, keptContext) = (x.compactingRows(firstRows), context.compactingRows(firstRows))
        }
        kernels.linear(keptContext, weights.output, .residual, into: kept)
        kernels.layerNorm(kept, weights.norm, epsilon: config.layerNormEpsilon)
        return kept
    }

    /// `BertIntermediate` + `BertOutput`: expand, activate, project back, residual, LayerNorm.
    func feedForward(_ weights: FeedForwardWeights, _ x: MatrixView, workspace: Workspace) {
        let inner = workspace.matrix(.intermediate, rows: x.rows, columns: config.intermediateSize)
        kernels.linear(x, weights.intermediate, .activation(config.activation), into: inner)
        kernels.linear(inner, weights.output, .residual, into: x)
        kernels.layerNorm(x, weights.norm, epsilon: config.layerNormEpsilon)
    }
}
