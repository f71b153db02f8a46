/// How closely a reduced-precision session reproduces fp32 on sample inputs.
public struct PrecisionAgreement: Sendable, Equatable, CustomStringConvertible {
    public let precision: Precision
    /// Compared units: texts for sequence classification and embeddings, tokens for token classification.
    public let compared: Int
    /// Units whose label (argmax) is the same — or whose fp32 label is itself a near tie (top two
    /// probabilities within ``InferenceSession/nearTieMargin``), where a flip says nothing about the fast
    /// path — or, for embeddings, whose cosine similarity is ≥ 0.99.
    public let agreeing: Int

    public var fraction: Double { compared == 0 ? 1 : Double(agreeing) / Double(compared) }

    public var description: String {
        "\(precision) agrees with fp32 on \(agreeing)/\(compared) (\(String(format: "%.2f", fraction * 100))%)"
    }
}

/// A reduced-precision session refused at load because it changes too many predictions.
public struct PrecisionCheckError: Error, Equatable, CustomStringConvertible {
    public let agreement: PrecisionAgreement
    /// The agreement required, as a fraction.
    public let threshold: Double

    public var description: String {
        "\(agreement) on the sample inputs, below the required \(String(format: "%.2f", threshold * 100))%; "
            + "refusing --precision \(agreement.precision) for this model (use fp32)"
    }
}

extension InferenceSession {
    /// The agreement required of a reduced-precision session before it serves: the issue's target on the
    /// ChnSentiCorp dev set.
    public static let defaultAgreementThreshold = 0.995

    /// fp32 probabilities of the top two labels closer than this make a label flip a tie, not a
    /// disagreement: one such text in a 32-text first batch would otherwise refuse a fast path that
    /// agrees on every decided text.
    public static let nearTieMargin: Float = 0.05

    /// Compares this session's predictions on `inputs` with `reference`'s (normally an fp32 session of the
    /// same model), in batches of `batchSize`.
    public func agreement(with reference: InferenceSession, on inputs: [ModelInput],
                          batchSize: Int = 32) throws(InferenceError) -> PrecisionAgreement {
        var compared = 0, agreeing = 0
        for start in stride(from: 0, to: inputs.count, by: max(1, batchSize)) {
            let batch = Array(inputs[start ..< min(start + max(1, batchSize), inputs.count)])
            switch model.task {
            case .sequenceClassification:
                let mine = try classify(batch), theirs = try reference.classify(batch)
                compared += mine.count
                agreeing += zip(mine, theirs).filter {
                    $0.labelIndex == $1.labelIndex || Self.isNearTie($1.scores)
                }.count
            case .tokenClassification:
                let mine = try labelTokens(batch).joined(), theirs = try reference.labelTokens(batch).joined()
                compared += mine.count
                agreeing += zip(mine, theirs).filter { $0.labelIndex == $1.labelIndex }.count
            case .embeddings:
                let mine = try embed(batch, pooling: .cls), theirs = try reference.embed(batch, pooling: .cls)
                compared += mine.count
                agreeing += zip(mine, theirs).filter { Self.cosine($0, $1) >= 0.99 }.count
            }
        }
        return PrecisionAgreement(precision: precision, compared: compared, agreeing: agreeing)
    }

    /// A `precision` session for `model`, checked against fp32 on `samples` first: the fast path serves
    /// only if it agrees on at least `threshold` of them. fp32 is returned unchecked.
    public static func checked(model: BertModel, threads: Int, precision: Precision, samples: [ModelInput],
                               threshold: Double = defaultAgreementThreshold) throws -> InferenceSession {
        let session = try InferenceSession(model: model, threads: threads, precision: precision)
        guard precision != .fp32 else { return session }
        let reference = InferenceSession(model: model, threads: threads)
        let agreement = try session.agreement(with: reference, on: samples)
        guard agreement.fraction >= threshold else { throw PrecisionCheckError(agreement: agreement, threshold: threshold) }
        return session
    }

    static func isNearTie(_ probabilities: [Float]) -> Bool {
        let sorted = probabilities.sorted(by: >)
        return sorted.count >= 2 && sorted[0] - sorted[1] < nearTieMargin
    }

    private static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        var dot: Float = 0, normA: Float = 0, normB: Float = 0
        for (x, y) in zip(a, b) {
            dot += x * y
            normA += x * x
            normB += y * y
        }
        let denominator = (normA * normB).squareRoot()
        return denominator > 0 ? dot / denominator : (normA == normB ? 1 : 0)
    }
}
