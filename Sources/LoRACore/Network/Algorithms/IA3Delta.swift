import LinearAlgebra

/// (IA)^3: ΔW = W ⊙ w, w broadcast over output rows (on_input = 0) or input columns.
enum IA3Delta {
    static func rebuild(_ module: NetworkModule, base: Matrix?) throws(ModelError) -> Matrix {
        guard let base else {
            throw ModelError(.mismatch, "(IA)^3 needs the base weight to form ΔW", key: module.name)
        }
        guard let weight = module["weight"] else { throw ModelError(.invalid, "(IA)^3 module without weight", key: module.name) }
        let w = weight.floats()
        let onInput = (module["on_input"]?.scalarValue() ?? 0) != 0
        var result = base
        if onInput {
            // Conv bases are flattened [out, in·k·k]; the vector scales input channels.
            let area = w.isEmpty ? 1 : base.cols / w.count
            guard w.count * area == base.cols else {
                throw ModelError(.mismatch, "(IA)^3 weight has \(w.count) values for \(base.cols) inputs", key: module.name)
            }
            for r in 0..<base.rows {
                for c in 0..<base.cols { result.values[r * base.cols + c] *= w[c / area] }
            }
        } else {
            guard w.count == base.rows else { throw ModelError(.mismatch, "(IA)^3 weight has \(w.count) values for \(base.rows) outputs", key: module.name) }
            for r in 0..<base.rows {
                for c in 0..<base.cols { result.values[r * base.cols + c] *= w[r] }
            }
        }
        return result
    }
}
