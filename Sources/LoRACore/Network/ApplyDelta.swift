import LinearAlgebra

extension NetworkModule {
    /// Apply this module to a weight in place: W ← W + m·ΔW, or, for DoRA
    /// modules, A1111's interpolation W ← W + m·(W' − W) with
    /// W' = magnitude ⊙ (W + ΔW) / ‖W + ΔW‖.
    ///
    /// `weight` is flattened to [out, in·kh·kw] (the row slice for packed q/k/v).
    public func apply(to weight: inout Matrix, multiplier m: Double) throws(ModelError) {
        guard m != 0 else { return }
        let delta = try self.delta(base: weight)
        guard delta.rows == weight.rows, delta.cols == weight.cols else {
            throw ModelError(.mismatch, "ΔW is \(delta.rows)x\(delta.cols) but the weight is \(weight.rows)x\(weight.cols)", key: name)
        }
        if let magnitude = (self["dora_scale"] ?? self["magnitude"])?.floats() {
            try applyDoRA(magnitude: magnitude, delta: delta, to: &weight, multiplier: m)
            return
        }
        let s = Float(m)
        weight.values.withUnsafeMutableBufferPointer { w in
            delta.values.withUnsafeBufferPointer { d in
                for i in 0..<w.count { w[i] += s * d[i] }
            }
        }
    }

    private func applyDoRA(magnitude: [Float], delta: Matrix, to weight: inout Matrix, multiplier m: Double) throws(ModelError) {
        let out = weight.rows, cols = weight.cols
        let shape = (self["dora_scale"] ?? self["magnitude"])?.shape ?? []
        // Per output row (LyCORIS wd_on_out, PEFT) when the vector has one value
        // per output; per input channel (the DoRA paper, A1111) otherwise.
        let perRow = magnitude.count == out && (shape.first == out || shape.count == 1)
        var v = weight
        for i in v.values.indices { v.values[i] += delta.values[i] }
        var scaled = v
        if perRow {
            for o in 0..<out {
                var sum = 0.0
                for c in 0..<cols { let x = Double(v.values[o * cols + c]); sum += x * x }
                let factor = sum > 0 ? Double(magnitude[o]) / sum.squareRoot() : 0
                for c in 0..<cols { scaled.values[o * cols + c] = Float(Double(v.values[o * cols + c]) * factor) }
            }
        } else {
            guard magnitude.count > 0, cols % magnitude.count == 0 else {
                throw ModelError(.mismatch, "DoRA magnitude has \(magnitude.count) values for \(out)x\(cols)", key: name)
            }
            let area = cols / magnitude.count
            for channel in 0..<magnitude.count {
                var sum = 0.0
                for o in 0..<out { for p in 0..<area { let x = Double(v.values[o * cols + channel * area + p]); sum += x * x } }
                let factor = sum > 0 ? Double(magnitude[channel]) / sum.squareRoot() : 0
                for o in 0..<out { for p in 0..<area {
                    let i = o * cols + channel * area + p
                    scaled.values[i] = Float(Double(v.values[i]) * factor)
                } }
            }
        }
        let s = Float(m)
        for i in weight.values.indices { weight.values[i] += s * (scaled.values[i] - weight.values[i]) }
    }

    /// The bias change this module carries (LyCORIS full `diff_b`, norm `b_norm`).
    public var biasDelta: [Float]? {
        (self["diff_b"] ?? self["b_norm"])?.floats()
    }
}
