import CDNNL

/// Runs Swift loops on the calling thread's OpenMP team, the same threads oneDNN computes on, so work
/// too small to split inside one primitive (attention of one text) is split across texts instead.
enum OpenMPTeam {
    /// Calls `body(member, memberCount)` once on each of up to `threads` threads and returns when all
    /// have finished. oneDNN primitives executed inside `body` run single-threaded.
    static func run(threads: Int, _ body: (_ member: Int, _ memberCount: Int) -> Void) {
        guard threads > 1 else {
            body(0, 1)
            return
        }
        withoutActuallyEscaping(body) { body in
            let context = Context(body)
            withExtendedLifetime(context) {
                GOMP_parallel({ data in
                    // `data` is the context passed below, alive until GOMP_parallel returns.
                    guard let data else { return }
                    let context = Unmanaged<Context>.fromOpaque(data).takeUnretainedValue()
                    context.body(Int(omp_get_thread_num()), Int(omp_get_num_threads()))
                }, Unmanaged.passUnretained(context).toOpaque(), UInt32(clamping: threads), 0)
            }
        }
    }

    /// Splits `0..<count` into contiguous chunks, one per team member, and runs `body` on each in
    /// parallel; fewer members (down to just the caller) when a chunk would hold less than `grain`,
    /// because waking the team costs microseconds.
    static func forEachChunk(of count: Int, grain: Int, _ body: (_ chunk: Range<Int>, _ member: Int) -> Void) {
        let members = max(1, min(Int(omp_get_max_threads()), count / max(grain, 1)))
        run(threads: members) { member, memberCount in
            body(count * member / memberCount ..< count * (member + 1) / memberCount, member)
        }
    }

    private final class Context {
        let body: (Int, Int) -> Void
        init(_ body: @escaping (Int, Int) -> Void) { self.body = body }
    }
}
