import BitBudgetCLI
import CAllocator
import Foundation

// Allocations of 128 KiB and more (KV blocks, widened weights, compaction buffers) are mapped and
// unmapped directly, so what the engine frees goes back to the system and the resident set
// follows the memory model. glibc's default raises this threshold after every such free and then
// keeps later freed blocks in its heaps: R-KV and HQQ caches, which replace blocks as they go,
// grew the resident set by 0.1–0.5 GB beyond what they held.
_ = bitbudget_set_mmap_threshold(128 * 1024)

exit(BitBudgetCommand.run(argc: CommandLine.argc, argv: CommandLine.unsafeArgv))
