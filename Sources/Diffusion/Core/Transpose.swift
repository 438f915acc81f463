import LoRACore

/// Transpose a rows×cols block into cols×rows (blocked for the cache).
func transpose(_ source: UnsafePointer<Float>, rows: Int, cols: Int, into destination: UnsafeMutablePointer<Float>) {
    let tile = 32
    Parallel.forRanges((rows + tile - 1) / tile, cost: tile * cols) { tiles in
        for tr in tiles {
            let r0 = tr * tile, r1 = min(rows, r0 + tile)
            var c0 = 0
            while c0 < cols {
                let c1 = min(cols, c0 + tile)
                for r in r0..<r1 {
                    for c in c0..<c1 { destination[c * rows + r] = source[r * cols + c] }
                }
                c0 = c1
            }
        }
    }
}
