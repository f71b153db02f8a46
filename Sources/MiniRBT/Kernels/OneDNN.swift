import CDNNL

/// Why a oneDNN-backed kernel could not be set up: the precision asked for has no implementation on this
/// CPU (or only oneDNN's slow reference one), or oneDNN refused a descriptor.
public struct KernelError: Error, Equatable, CustomStringConvertible {
    /// What was being built, e.g. "int8 matmul 2048×256 · 256×1024".
    public let operation: String
    /// oneDNN's status code (`dnnl_status_t`); 0 when oneDNN succeeded but only with a reference implementation.
    public let status: Int32
    /// The instruction set oneDNN dispatches to on this machine.
    public let instructionSet: String
    /// The implementation oneDNN offered, when it offered one.
    public let implementation: String?
    /// Why the offered implementation does not count as fast, when it is not oneDNN's reference code.
    public let reason: String?

    public init(operation: String, status: Int32, instructionSet: String, implementation: String?, reason: String? = nil) {
        self.operation = operation
        self.status = status
        self.instructionSet = instructionSet
        self.implementation = implementation
        self.reason = reason
    }

    public var description: String {
        if let reason {
            return "\(operation): \(reason) on this CPU (\(instructionSet))"
        }
        if let implementation {
            return "\(operation): oneDNN only offers its reference implementation (\(implementation)) on this CPU (\(instructionSet)); "
                + "expected a JIT kernel — use --precision fp32 here"
        }
        return "\(operation): oneDNN failed with status \(status) on this CPU (\(instructionSet))"
    }
}

/// The argument indices of `dnnl_primitive_execute` (oneDNN's `DNNL_ARG_*` macros).
enum DNNLArgument {
    static let source: Int32 = 1
    static let weights: Int32 = 33
    static let bias: Int32 = 41
    static let destination: Int32 = 17
    /// The second input of the binary post-op at `index` in the chain.
    static func postOpInput(_ index: Int) -> Int32 { Int32(16384 * (index + 1)) | 2 }
}

/// The CPU engine every primitive of the process is created on.
final class DNNLEngine: @unchecked Sendable {
    // Safe to share: oneDNN engines are immutable after creation and thread-safe.
    static let cpu = DNNLEngine()
    let handle: dnnl_engine_t?

    private init() {
        RuntimeInfo.applyCap()
        var engine: dnnl_engine_t?
        // A CPU engine only fails to appear if the library itself is broken; primitive creation reports that.
        _ = dnnl_engine_create(&engine, dnnl_cpu, 0)
        handle = engine
    }
}

/// One in-order execution stream (one per kernels instance, so per inference session).
final class DNNLStream {
    let handle: dnnl_stream_t?

    init() throws(KernelError) {
        var stream: dnnl_stream_t?
        try DNNL.check(dnnl_stream_create(&stream, DNNLEngine.cpu.handle, 0), "creating a oneDNN stream")
        handle = stream
    }

    deinit { dnnl_stream_destroy(handle) }
}

/// A created primitive and the memory layouts its descriptor settled on.
final class DNNLPrimitive {
    /// The implementations of oneDNN an operation accepts, from any to only the fastest.
    enum Accepted {
        /// Any, oneDNN's reference code included.
        case any
        /// A JIT kernel: not oneDNN's reference code.
        case jit
        /// A brgemm kernel only: where oneDNN offers nothing else but its generic gemm, that gemm emulates
        /// the format in fp32 arithmetic and is slower than fp32 itself (bf16 without AVX-512 BF16 or AMX).
        case brgemm
    }

    let handle: dnnl_primitive_t?
    /// oneDNN's name for the implementation it picked, e.g. `brg:avx512_core_vnni`.
    let implementation: String
    private let descriptor: dnnl_primitive_desc_t?

    /// Creates the primitive for an initialised op descriptor (`desc` points at e.g. a `dnnl_matmul_desc_t`).
    /// Throws when oneDNN has no implementation, or none of the kind `accepted` names.
    init(_ desc: UnsafeRawPointer, attributes: dnnl_primitive_attr_t?, operation: @autoclosure () -> String,
         accepted: Accepted) throws(KernelError) {
        var descriptor: dnnl_primitive_desc_t?
        try DNNL.check(dnnl_primitive_desc_create(&descriptor, desc, attributes, DNNLEngine.cpu.handle, nil), operation())
        var info: UnsafePointer<CChar>?
        _ = withUnsafeMutablePointer(to: &info) { dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, $0) }
        let implementation = info.map { String(cString: $0) } ?? "unknown"
        let acceptable = switch accepted {
        case .any: true
        case .jit: !implementation.hasPrefix("ref")
        case .brgemm: implementation.hasPrefix("brg")
        }
        guard acceptable else {
            dnnl_primitive_desc_destroy(descriptor)
            // KernelError explains reference code by itself; the generic gemm needs the reason.
            let reason = implementation.hasPrefix("ref") ? nil
                : "oneDNN offers only \(implementation), which emulates this format more slowly than fp32"
            throw KernelError(operation: operation(), status: 0, instructionSet: RuntimeInfo.instructionSet,
                              implementation: implementation, reason: reason)
        }
        var primitive: dnnl_primitive_t?
        let status = dnnl_primitive_create(&primitive, descriptor)
        guard status == dnnl_success else {
            dnnl_primitive_desc_destroy(descriptor)
            throw KernelError(operation: operation(), status: Int32(status.rawValue), instructionSet: RuntimeInfo.instructionSet,
                              implementation: nil)
        }
        self.handle = primitive
        self.descriptor = descriptor
        self.implementation = implementation
    }

    deinit {
        dnnl_primitive_destroy(handle)
        dnnl_primitive_desc_destroy(descriptor)
    }

    /// The layout the primitive chose for `what` (e.g. `dnnl_query_weights_md`).
    func layout(_ what: dnnl_query_t) -> dnnl_memory_desc_t? {
        dnnl_primitive_desc_query_md(descriptor, what, 0)?.pointee
    }

    /// Runs the primitive.
    /// - Returns: false when oneDNN refused (arguments were validated at creation, so callers fall back to
    ///   another implementation rather than trust a half-written output).
    func execute(_ arguments: [dnnl_exec_arg_t], on stream: DNNLStream) -> Bool {
        let status = arguments.withUnsafeBufferPointer {
            dnnl_primitive_execute(handle, stream.handle, Int32($0.count), $0.baseAddress)
        }
        return status == dnnl_success
    }
}

/// A oneDNN memory object over memory owned elsewhere; the data handle is swapped per call.
final class DNNLMemory {
    let handle: dnnl_memory_t?
    let layout: dnnl_memory_desc_t

    init(_ layout: dnnl_memory_desc_t, data: UnsafeMutableRawPointer? = nil) throws(KernelError) {
        var memory: dnnl_memory_t?
        var copy = layout
        try DNNL.check(dnnl_memory_create(&memory, &copy, DNNLEngine.cpu.handle, data), "creating a oneDNN memory object")
        self.handle = memory
        self.layout = layout
    }

    deinit { dnnl_memory_destroy(handle) }

    func point(at data: UnsafeRawPointer) {
        _ = dnnl_memory_set_data_handle(handle, UnsafeMutableRawPointer(mutating: data))
    }

    func argument(_ index: Int32) -> dnnl_exec_arg_t { dnnl_exec_arg_t(arg: index, memory: handle) }
}

/// Memory descriptors and status checks.
enum DNNL {
    static func check(_ status: dnnl_status_t, _ operation: @autoclosure () -> String) throws(KernelError) {
        guard status == dnnl_success else {
            throw KernelError(operation: operation(), status: Int32(status.rawValue), instructionSet: RuntimeInfo.instructionSet,
                              implementation: nil)
        }
    }

    /// A dense layout named by `tag` (`dnnl_format_tag_any` lets the primitive choose).
    static func layout(_ dims: [Int], _ type: dnnl_data_type_t, _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t {
        var desc = dnnl_memory_desc_t()
        let sizes = dims.map { dnnl_dim_t($0) }
        // Only fails on malformed dims, which callers never build.
        let status = dnnl_memory_desc_init_by_tag(&desc, Int32(dims.count), sizes, type, tag)
        precondition(status == dnnl_success, "memory descriptor \(dims) \(tag) rejected")
        return desc
    }

    /// A strided view, e.g. one head's columns of a row-major matrix.
    static func layout(_ dims: [Int], _ type: dnnl_data_type_t, strides: [Int]) -> dnnl_memory_desc_t {
        var desc = dnnl_memory_desc_t()
        let status = dnnl_memory_desc_init_by_strides(&desc, Int32(dims.count), dims.map { dnnl_dim_t($0) },
                                                      type, strides.map { dnnl_dim_t($0) })
        precondition(status == dnnl_success, "memory descriptor \(dims) strides \(strides) rejected")
        return desc
    }

    /// Copies `source` into `destination`'s layout (packing, type conversion), once, at preparation time.
    static func reorder(_ source: DNNLMemory, into destination: DNNLMemory, stream: DNNLStream) throws(KernelError) {
        var descriptor: dnnl_primitive_desc_t?
        var from = source.layout, to = destination.layout
        try check(dnnl_reorder_primitive_desc_create(&descriptor, &from, DNNLEngine.cpu.handle, &to, DNNLEngine.cpu.handle, nil),
                  "packing weights")
        defer { dnnl_primitive_desc_destroy(descriptor) }
        var primitive: dnnl_primitive_t?
        try check(dnnl_primitive_create(&primitive, descriptor), "packing weights")
        defer { dnnl_primitive_destroy(primitive) }
        let arguments = [source.argument(DNNLArgument.source), destination.argument(DNNLArgument.destination)]
        try check(arguments.withUnsafeBufferPointer { dnnl_primitive_execute(primitive, stream.handle, 2, $0.baseAddress) },
                  "packing weights")
    }
}

/// oneDNN-owned attributes (post-ops, scales), released when done.
final class DNNLAttributes {
    let handle: dnnl_primitive_attr_t?
    private var postOps: dnnl_post_ops_t?

    init() throws(KernelError) {
        var attributes: dnnl_primitive_attr_t?
        try DNNL.check(dnnl_primitive_attr_create(&attributes), "creating primitive attributes")
        handle = attributes
    }

    deinit {
        if postOps != nil { dnnl_post_ops_destroy(postOps) }
        dnnl_primitive_attr_destroy(handle)
    }

    /// Per-output-channel (mask over dim 1) or common (one value) scales known at creation.
    func outputScales(_ scales: [Float], perColumn: Bool) throws(KernelError) {
        try DNNL.check(dnnl_primitive_attr_set_output_scales(handle, dnnl_dim_t(scales.count), perColumn ? 2 : 0, scales),
                       "setting output scales")
    }

    /// The post-op chain, applied in order after the product (and output scales).
    func postOps(_ build: (dnnl_post_ops_t?) -> dnnl_status_t) throws(KernelError) {
        var ops: dnnl_post_ops_t?
        try DNNL.check(dnnl_post_ops_create(&ops), "creating post-ops")
        postOps = ops
        try DNNL.check(build(ops), "appending post-ops")
        try DNNL.check(dnnl_primitive_attr_set_post_ops(handle, ops), "setting post-ops")
    }
}
