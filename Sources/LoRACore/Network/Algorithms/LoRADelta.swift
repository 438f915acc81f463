import LinearAlgebra

/// kohya LoRA / LoCon (and PEFT lora_A/lora_B): ΔW = up · down, with an
/// optional Tucker core `lora_mid` for k×k convs.
enum LoRADelta {
    /// up as [out, r], down as [r, in·kh·kw].
    static func factors(_ module: NetworkModule) throws(ModelError) -> (up: Matrix, down: Matrix) {
        guard let upView = module["up"], let downView = module["down"] else {
            throw ModelError(.invalid, "LoRA module without lora_up/lora_down", key: module.name)
        }
        let up = upView.matrix(rows: upView.shape[0])
        let down = downView.matrix(rows: downView.shape[0])
        guard up.cols == down.rows else {
            throw ModelError(.invalid, "lora_up \(upView.shape) and lora_down \(downView.shape) do not multiply", key: module.name)
        }
        return (up, down)
    }

    static func rebuild(_ module: NetworkModule) throws(ModelError) -> Matrix {
        let (up, down) = try factors(module)
        guard let mid = module["mid"] else { return LinearAlgebra.multiply(up, down) }
        // Tucker: ΔW[o,i,h,w] = Σ_a Σ_b up[o,a] · mid[a,b,h,w] · down[b,i] (down is [r, in] here).
        let r = up.cols, out = up.rows, inputs = down.cols
        let kh = mid.shape[2], kw = mid.shape[3], area = kh * kw
        let core = mid.matrix(rows: r)                         // [r, r·kh·kw]
        let upCore = LinearAlgebra.multiply(up, core)          // [out, r·area] as [o, b, h, w]
        var result = Matrix(zeros: out, inputs * area)
        for o in 0..<out {
            for b in 0..<r {
                for i in 0..<inputs {
                    let d = down.values[b * inputs + i]
                    if d == 0 { continue }
                    let src = o * r * area + b * area
                    let dst = o * inputs * area + i * area
                    for p in 0..<area { result.values[dst + p] += upCore.values[src + p] * d }
                }
            }
        }
        return result
    }

    /// ‖up·down‖_F from the r×r Gram matrices: Σ_ij (upᵀup)_ij (down·downᵀ)_ij.
    static func norm(_ module: NetworkModule) throws(ModelError) -> Double {
        let (up, down) = try factors(module)
        let gu = LinearAlgebra.multiply(up, up, transposeA: true)     // r×r
        let gd = LinearAlgebra.multiply(down, down, transposeB: true) // r×r
        var total = 0.0
        for i in gu.values.indices { total += Double(gu.values[i]) * Double(gd.values[i]) }
        return max(total, 0).squareRoot()
    }
}
