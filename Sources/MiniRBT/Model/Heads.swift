import Foundation

/// How a sentence embedding is made from a text's last hidden states.
public enum Pooling: String, Sendable, CaseIterable {
    /// The `[CLS]` token's hidden state.
    case cls
    /// The average over all of the text's tokens (the attention mask's real tokens, `[CLS]`/`[SEP]` included).
    case mean
}

/// The heads on top of the encoder's last hidden states (rows as laid out by `PackedBatch`).
extension BertEncoder {
    /// `BertPooler`: `tanh(W · h[CLS] + b)`, one row per text; `cls` is the `.firstTokens` readout.
    func pooler(_ pooler: LinearWeights, _ cls: MatrixView, workspace: Workspace) -> MatrixView {
        let pooled = workspace.matrix(.headHidden, rows: cls.rows, columns: pooler.outputSize)
        kernels.linear(cls, pooler, .activation(.tanh), into: pooled)
        return pooled
    }

    /// `classifier`: one row of logits per input row (per text after the pooler, per token otherwise).
    func classifier(_ classifier: LinearWeights, _ features: MatrixView, workspace: Workspace) -> MatrixView {
        let logits = workspace.matrix(.logits, rows: features.rows, columns: classifier.outputSize)
        kernels.linear(features, classifier, .bias, into: logits)
        return logits
    }

    /// One row per text: the mean of its rows of `hidden` (every token's last hidden state).
    func meanPooling(_ hidden: MatrixView, batch: PackedBatch, workspace: Workspace) -> MatrixView {
        let sentences = workspace.matrix(.headInput, rows: batch.sequences.count, columns: hidden.columns)
        for (index, rows) in batch.sequences.enumerated() {
            let out = sentences.row(index)
            out.update(repeating: 0)
            for row in rows {
                let values = hidden.row(row)
                for column in out.indices { out[column] += values[column] }
            }
            let scale = 1 / Float(rows.count)
            for column in out.indices { out[column] *= scale }
        }
        return sentences
    }
}

extension ProblemType {
    /// Per-label scores for one row of logits, as `torch.softmax` / `torch.sigmoid` compute them.
    func scores(_ logits: [Float]) -> [Float] {
        switch self {
        case .singleLabel:
            let largest = logits.max() ?? 0
            let exponentials = logits.map { expf($0 - largest) }
            let sum = exponentials.reduce(0, +)
            return exponentials.map { $0 / sum }
        case .multiLabel:
            return logits.map { 1 / (1 + expf(-$0)) }
        }
    }
}
