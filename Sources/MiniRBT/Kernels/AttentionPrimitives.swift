import CDNNL

/// Self-attention of one text of `length` tokens, all heads at once: oneDNN batched matmuls (batch =
/// heads) read the heads' columns straight out of the fused QKV rows through strides, so no head is
/// copied, and a softmax primitive normalises the scores in place.
final class AttentionPrimitives {
    private let scores: DNNLPrimitive
    private let softmax: DNNLPrimitive
    private let context: DNNLPrimitive
    private let query: DNNLMemory
    private let keyTransposed: DNNLMemory
    private let value: DNNLMemory
    private let probabilities: DNNLMemory
    private let output: DNNLMemory
    private let hidden: Int
    /// Floats of scratch the scores of one text need.
    let scoreCount: Int

    init(length: Int, headCount: Int, hidden: Int, queryKeyValueStride: Int, contextStride: Int) throws(KernelError) {
        let headSize = hidden / headCount
        self.hidden = hidden
        scoreCount = headCount * length * length
        // Head h of token t sits at column h·headSize of row t: batch stride headSize, row stride = the matrix's.
        var queryLayout = DNNL.layout([headCount, length, headSize], dnnl_f32, strides: [headSize, queryKeyValueStride, 1])
        var keyLayout = DNNL.layout([headCount, headSize, length], dnnl_f32, strides: [headSize, 1, queryKeyValueStride])
        var valueLayout = queryLayout
        var scoresLayout = DNNL.layout([headCount, length, length], dnnl_f32, dnnl_abc)
        var contextLayout = DNNL.layout([headCount, length, headSize], dnnl_f32, strides: [headSize, contextStride, 1])

        var scoresDesc = dnnl_matmul_desc_t()
        try DNNL.check(dnnl_matmul_desc_init(&scoresDesc, &queryLayout, &keyLayout, nil, &scoresLayout), "describing attention scores")
        let scale = try DNNLAttributes()
        try scale.outputScales([1 / Float(headSize).squareRoot()], perColumn: false)
        scores = try DNNLPrimitive(&scoresDesc, attributes: scale.handle, operation: "attention scores for \(length) tokens", requireJIT: false)

        var softmaxDesc = dnnl_softmax_desc_t()
        try DNNL.check(dnnl_softmax_forward_desc_init(&softmaxDesc, dnnl_forward_inference, &scoresLayout, 2), "describing softmax")
        softmax = try DNNLPrimitive(&softmaxDesc, attributes: nil, operation: "softmax over \(length) tokens", requireJIT: false)

        var contextDesc = dnnl_matmul_desc_t()
        try DNNL.check(dnnl_matmul_desc_init(&contextDesc, &scoresLayout, &valueLayout, nil, &contextLayout), "describing attention context")
        context = try DNNLPrimitive(&contextDesc, attributes: nil, operation: "attention context for \(length) tokens", requireJIT: false)

        query = try DNNLMemory(queryLayout)
        keyTransposed = try DNNLMemory(keyLayout)
        value = try DNNLMemory(valueLayout)
        probabilities = try DNNLMemory(scoresLayout)
        output = try DNNLMemory(contextLayout)
    }

    /// `queryKeyValue` points at the text's first QKV row, `contextRow` at its first context row.
    func run(queryKeyValue: UnsafeMutablePointer<Float>, contextRow: UnsafeMutablePointer<Float>,
             scratch: UnsafeMutablePointer<Float>, stream: DNNLStream) {
        query.point(at: queryKeyValue)
        keyTransposed.point(at: queryKeyValue + hidden)
        value.point(at: queryKeyValue + 2 * hidden)
        probabilities.point(at: scratch)
        output.point(at: contextRow)
        scores.execute([query.argument(DNNLArgument.source), keyTransposed.argument(DNNLArgument.weights),
                        probabilities.argument(DNNLArgument.destination)], on: stream)
        softmax.execute([probabilities.argument(DNNLArgument.source), probabilities.argument(DNNLArgument.destination)], on: stream)
        context.execute([probabilities.argument(DNNLArgument.source), value.argument(DNNLArgument.weights),
                         output.argument(DNNLArgument.destination)], on: stream)
    }
}
