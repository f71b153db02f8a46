import CDNNL

/// The result of sequence classification for one text.
public struct Classification: Sendable, Equatable {
    /// Index of the best-scoring label.
    public let labelIndex: Int
    public let label: String
    /// Score of `label`.
    public let score: Float
    /// One score per label, in the order of `BertModel.labels` (softmax, or sigmoid for multi-label).
    public let scores: [Float]
    /// The classifier's raw outputs, in label order.
    public let logits: [Float]
}

/// The prediction for one token of token classification.
public struct TokenPrediction: Sendable, Equatable {
    public let labelIndex: Int
    public let label: String
    public let score: Float
    public let logits: [Float]
}

/// Runs batches through one shared `BertModel` with scratch memory of its own.
///
/// One session per inference shard: it is not thread-safe (its workspace and prepared kernels are reused
/// across calls) but any number of sessions may share a model. Each call sets the OpenMP team size of the
/// calling thread to `threads`, since that setting is per thread in GNU OpenMP.
public final class InferenceSession {
    public let model: BertModel
    /// OpenMP threads the matrix products may use.
    public let threads: Int
    /// The format of the encoder's matrix products (the heads always run in fp32).
    public let precision: Precision
    private let encoder: BertEncoder
    private let workspace = Workspace()

    /// An fp32 session. Its weights are packed for oneDNN's fastest kernels; should oneDNN refuse that
    /// (it does not on any CPU it supports), the session falls back to plain GEMM calls, same results.
    public convenience init(model: BertModel, threads: Int = 1) {
        Self.setThreads(threads)
        let kernels: any ComputeKernels = (try? PackedKernels(precision: .fp32, weights: model.weights)) ?? ReferenceKernels()
        self.init(model: model, threads: threads, precision: .fp32, kernels: kernels)
    }

    /// A session computing the encoder's products in `precision`, packing the weights now.
    ///
    /// Throws when this CPU has no fast kernel for `precision` (bf16 needs AVX-512 BF16 or AMX; int8 needs
    /// AVX2), where it would be slower than fp32: ``RuntimeInfo/kernel(for:)`` tells in advance.
    public convenience init(model: BertModel, threads: Int, precision: Precision) throws(KernelError) {
        Self.setThreads(threads)
        self.init(model: model, threads: threads, precision: precision,
                  kernels: try PackedKernels(precision: precision, weights: model.weights))
    }

    package init(model: BertModel, threads: Int, precision: Precision = .fp32, kernels: any ComputeKernels) {
        self.model = model
        self.threads = max(1, threads)
        self.precision = precision
        self.encoder = BertEncoder(config: model.config, weights: model.weights, kernels: kernels)
    }

    /// Sequence classification: one result per input, in input order.
    public func classify(_ inputs: [ModelInput]) throws(InferenceError) -> [Classification] {
        guard model.task == .sequenceClassification, let pooler = model.weights.pooler, let classifier = model.weights.classifier else {
            throw .headUnavailable(requested: .sequenceClassification, model: model.task)
        }
        let batch = try PackedBatch(inputs, config: model.config)
        guard !inputs.isEmpty else { return [] }
        let cls = encode(batch, readout: .firstTokens)
        let pooled = encoder.pooler(pooler, cls, workspace: workspace)
        let logits = encoder.classifier(classifier, pooled, workspace: workspace)
        return (0..<logits.rows).map { row in
            let rowLogits = Array(logits.row(row))
            let scores = model.config.problemType.scores(rowLogits)
            let best = Self.argmax(scores)
            return Classification(labelIndex: best, label: model.labels[best], score: scores[best],
                                  scores: scores, logits: rowLogits)
        }
    }

    /// Token classification: for each input, one prediction per token (special tokens included).
    public func labelTokens(_ inputs: [ModelInput]) throws(InferenceError) -> [[TokenPrediction]] {
        guard model.task == .tokenClassification, let classifier = model.weights.classifier else {
            throw .headUnavailable(requested: .tokenClassification, model: model.task)
        }
        let batch = try PackedBatch(inputs, config: model.config)
        guard !inputs.isEmpty else { return [] }
        let hidden = encode(batch, readout: .everyToken)
        let logits = encoder.classifier(classifier, hidden, workspace: workspace)
        return batch.sequences.map { rows in
            rows.map { row in
                let rowLogits = Array(logits.row(row))
                let scores = ProblemType.singleLabel.scores(rowLogits)
                let best = Self.argmax(scores)
                return TokenPrediction(labelIndex: best, label: model.labels[best], score: scores[best], logits: rowLogits)
            }
        }
    }

    /// Sentence embeddings from the last hidden states; works with any checkpoint's encoder.
    public func embed(_ inputs: [ModelInput], pooling: Pooling) throws(InferenceError) -> [[Float]] {
        let batch = try PackedBatch(inputs, config: model.config)
        guard !inputs.isEmpty else { return [] }
        let sentences = switch pooling {
        case .cls: encode(batch, readout: .firstTokens)
        case .mean: encoder.meanPooling(encode(batch, readout: .everyToken), batch: batch, workspace: workspace)
        }
        return (0..<sentences.rows).map { Array(sentences.row($0)) }
    }

    /// The last hidden states of each input, `[tokens, hidden]` (HF's `last_hidden_state` without padding).
    public func hiddenStates(_ inputs: [ModelInput]) throws(InferenceError) -> [Tensor] {
        let batch = try PackedBatch(inputs, config: model.config)
        guard !inputs.isEmpty else { return [] }
        let hidden = encode(batch, readout: .everyToken)
        return batch.sequences.map { rows in
            Tensor(shape: [rows.count, hidden.columns], values: hidden.rows(rows).toArray())
        }
    }

    private func encode(_ batch: PackedBatch, readout: BertEncoder.Readout) -> MatrixView {
        Self.setThreads(threads)
        return encoder.forward(batch, readout: readout, workspace: workspace)
    }

    /// oneDNN sizes its kernels' work split for the team size in force when a primitive is created, and
    /// runs with the one in force at execution; both happen on the calling thread.
    private static func setThreads(_ threads: Int) {
        omp_set_num_threads(Int32(clamping: max(1, threads)))
    }

    private static func argmax(_ values: [Float]) -> Int {
        values.indices.max { values[$0] < values[$1] } ?? 0
    }
}
