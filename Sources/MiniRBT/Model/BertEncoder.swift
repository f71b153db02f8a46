/// BERT's forward pass, block by block as in transformers' `modeling_bert.py`:
///
///     x = LayerNorm(word[id] + tokenType[type] + position[i])            embeddings
///     for each layer:
///         x = LayerNorm(x + Wo · attention(Wq x, Wk x, Wv x))             attention
///         x = LayerNorm(x + W2 · act(W1 x))                                feedForward
///
/// The batch is packed (see `PackedBatch`): rows are tokens of all texts back to back, so the linear
/// layers see every token at once and attention looks only within one text. Dropout is identity at
/// inference and is left out.
struct BertEncoder {
    let config: ModelConfig
    let weights: BertWeights
    let kernels: any ComputeKernels

    /// The last hidden states, one row per token of `batch`, in `workspace`'s `.hidden` buffer.
    func forward(_ batch: PackedBatch, workspace: Workspace) -> MatrixView {
        let x = workspace.matrix(.hidden, rows: batch.tokenCount, columns: config.hiddenSize)
        embeddings(batch, into: x)
        for layer in weights.layers {
            attention(layer.attention, x, batch: batch, workspace: workspace)
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
        kernels.layerNorm(x, adding: nil, table.norm, epsilon: config.layerNormEpsilon, into: x)
    }

    /// `BertAttention`: multi-head scaled dot-product self-attention, output projection, residual, LayerNorm.
    func attention(_ weights: AttentionWeights, _ x: MatrixView, batch: PackedBatch, workspace: Workspace) {
        let tokens = batch.tokenCount, hidden = config.hiddenSize, headSize = config.headSize
        let query = workspace.matrix(.query, rows: tokens, columns: hidden)
        let key = workspace.matrix(.key, rows: tokens, columns: hidden)
        let value = workspace.matrix(.value, rows: tokens, columns: hidden)
        let context = workspace.matrix(.context, rows: tokens, columns: hidden)
        let scores = workspace.matrix(.scores, rows: batch.longest, columns: batch.longest)
        kernels.linear(x, weights.query, into: query)
        kernels.linear(x, weights.key, into: key)
        kernels.linear(x, weights.value, into: value)

        let scale = 1 / Float(headSize).squareRoot()
        for rows in batch.sequences {
            // Keys are only this text's tokens, so no padding mask is needed and no row is all-masked.
            let textScores = scores.rows(0..<rows.count).columns(0..<rows.count)
            for head in 0..<config.headCount {
                let columns = head * headSize ..< (head + 1) * headSize
                kernels.matmul(query.rows(rows).columns(columns), key.rows(rows).columns(columns),
                               transposeB: true, alpha: scale, into: textScores)
                kernels.softmaxRows(textScores)
                kernels.matmul(textScores, value.rows(rows).columns(columns),
                               transposeB: false, alpha: 1, into: context.rows(rows).columns(columns))
            }
        }

        let projected = workspace.matrix(.projection, rows: tokens, columns: hidden)
        kernels.linear(context, weights.output, into: projected)
        kernels.layerNorm(projected, adding: x, weights.norm, epsilon: config.layerNormEpsilon, into: x)
    }

    /// `BertIntermediate` + `BertOutput`: expand, activate, project back, residual, LayerNorm.
    func feedForward(_ weights: FeedForwardWeights, _ x: MatrixView, workspace: Workspace) {
        let inner = workspace.matrix(.intermediate, rows: x.rows, columns: config.intermediateSize)
        kernels.linear(x, weights.intermediate, into: inner)
        kernels.activate(inner, config.activation)
        let projected = workspace.matrix(.projection, rows: x.rows, columns: config.hiddenSize)
        kernels.linear(inner, weights.output, into: projected)
        kernels.layerNorm(projected, adding: x, weights.norm, epsilon: config.layerNormEpsilon, into: x)
    }
}
