import CDNNL
import CVectorMath

/// Self-attention of one text of `length` tokens, all heads at once, in oneDNN batched matmuls (batch =
/// heads) and a softmax primitive that normalises the scores in place.
///
/// The scores product reads the text's query and key heads from contiguous per-head copies, because
/// oneDNN 2.6 runs strided views through `gemm:jit` at about half its brgemm speed for this product;
/// for the context product (scores · values, written straight into the context rows) the copies would
/// cost about what they save, so it reads the value heads where they are.
final class AttentionPrimitives {
    private let scores: DNNLPrimitive
    private let softmax: DNNLPrimitive
    private let context: DNNLPrimitive
    private let query: DNNLMemory
    private let keyTransposed: DNNLMemory
    private let value: DNNLMemory
    private let probabilities: DNNLMemory
    private let output: DNNLMemory
    private let length: Int
    private let headCount: Int
    private let headSize: Int
    private let queryKeyValueStride: Int
    /// Floats of scratch one text needs: query and key heads, scores.
    let scratchCount: Int

    init(length: Int, headCount: Int, hidden: Int, queryKeyValueStride: Int, contextStride: Int) throws(KernelError) {
        let headSize = hidden / headCount
        self.length = length
        self.headCount = headCount
        self.headSize = headSize
        self.queryKeyValueStride = queryKeyValueStride
        scratchCount = headCount * length * (2 * headSize + length)
        var queryLayout = DNNL.layout([headCount, length, headSize], dnnl_f32, dnnl_abc)
        // Kᵀ of each head: the contiguous [length][headSize] copy read column-major.
        var keyLayout = DNNL.layout([headCount, headSize, length], dnnl_f32, dnnl_acb)
        // Head h of token t sits at column h·headSize of row t: batch stride headSize, row stride the matrix's.
        var valueLayout = DNNL.layout([headCount, length, headSize], dnnl_f32, strides: [headSize, queryKeyValueStride, 1])
        var scoresLayout = DNNL.layout([headCount, length, length], dnnl_f32, dnnl_abc)
        var contextLayout = DNNL.layout([headCount, length, headSize], dnnl_f32, strides: [headSize, contextStride, 1])

        var scoresDesc = dnnl_matmul_desc_t()
        try DNNL.check(dnnl_matmul_desc_init(&scoresDesc, &queryLayout, &keyLayout, nil, &scoresLayout), "describing attention scores")
        let scale = try DNNLAttributes()
        try scale.outputScales([1 / Float(headSize).squareRoot()], perColumn: false)
        scores = try DNNLPrimitive(&scoresDesc, attributes: scale.handle, operation: "attention scores for \(length) tokens", accepted: .any)

        var softmaxDesc = dnnl_softmax_desc_t()
        try DNNL.check(dnnl_softmax_forward_desc_init(&softmaxDesc, dnnl_forward_inference, &scoresLayout, 2), "describing softmax")
        softmax = try DNNLPrimitive(&softmaxDesc, attributes: nil, operation: "softmax over \(length) tokens", accepted: .any)

        var contextDesc = dnnl_matmul_desc_t()
        try DNNL.check(dnnl_matmul_desc_init(&contextDesc, &scoresLayout, &valueLayout, nil, &contextLayout), "describing attention context")
        context = try DNNLPrimitive(&contextDesc, attributes: nil, operation: "attention context for \(length) tokens", accepted: .any)

        query = try DNNLMemory(queryLayout)
        keyTransposed = try DNNLMemory(keyLayout)
        value = try DNNLMemory(valueLayout)
        probabilities = try DNNLMemory(scoresLayout)
        output = try DNNLMemory(contextLayout)
    }

    /// `queryKeyValue` points at the text's first QKV row, `contextRow` at its first context row;
    /// `scratch` holds at least `scratchCount` floats.
    /// - Returns: false when oneDNN refused to run a step (the caller recomputes the text another way).
    func run(queryKeyValue: UnsafeMutablePointer<Float>, contextRow: UnsafeMutablePointer<Float>,
             scratch: UnsafeMutablePointer<Float>, stream: DNNLStream) -> Bool {
        let headBlock = headCount * length * headSize
        let (queryHeads, keyHeads, scoreMatrices) = (scratch, scratch + headBlock, scratch + 2 * headBlock)
        vm_split_query_key(queryKeyValue, length, headCount, headSize, queryKeyValueStride, queryHeads, keyHeads)
        query.point(at: queryHeads)
        keyTransposed.point(at: keyHeads)
        value.point(at: queryKeyValue + 2 * headCount * headSize)
        probabilities.point(at: scoreMatrices)
        output.point(at: contextRow)
        return scores.execute([query.argument(DNNLArgument.source), keyTransposed.argument(DNNLArgument.weights),
                               probabilities.argument(DNNLArgument.destination)], on: stream)
            && softmax.execute([probabilities.argument(DNNLArgument.source), probabilities.argument(DNNLArgument.destination)],
                               on: stream)
            && context.execute([probabilities.argument(DNNLArgument.source), value.argument(DNNLArgument.weights),
                                output.argument(DNNLArgument.destination)], on: stream)
    }
}
