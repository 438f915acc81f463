import LinearAlgebra

extension TensorView {
    /// The tensor as a matrix: the first axis as rows, the rest flattened.
    public func matrix() -> Matrix {
        let rows = shape.first ?? 1
        let cols = rows == 0 ? 0 : elementCount / max(rows, 1)
        return Matrix(rows: rows, cols: cols, values: floats())
    }

    /// The tensor as a matrix with an explicit row count.
    public func matrix(rows: Int) -> Matrix {
        Matrix(rows: rows, cols: rows == 0 ? 0 : elementCount / rows, values: floats())
    }
}

extension NetworkModule {
    /// ΔW for this module, multiplied by its scale (alpha/rank) but not by any
    /// user ratio, flattened to [out, in·kh·kw]. `base` is the weight being
    /// modified (same flattening); only (IA)^3, GLoRA and OFT need it.
    public func delta(base: Matrix? = nil) throws(ModelError) -> Matrix {
        var result: Matrix
        switch algorithm {
        case .lora: result = try LoRADelta.rebuild(self)
        case .loha: result = try LoHaDelta.rebuild(self)
        case .lokr: result = try LoKrDelta.rebuild(self)
        case .full, .norm: result = try FullDelta.rebuild(self)
        case .ia3: result = try IA3Delta.rebuild(self, base: base)
        case .glora: result = try GLoRADelta.rebuild(self, base: base)
        case .oft, .boft: result = try OFTDelta.rebuild(self, base: base)
        }
        if scale != 1 {
            let s = Float(scale)
            for i in result.values.indices { result.values[i] *= s }
        }
        return result
    }

    /// ‖ΔW‖_F (scaled). LoRA and LoKr use identities that avoid forming ΔW;
    /// nil when ΔW needs the base weight.
    public func deltaNorm() throws(ModelError) -> Double? {
        switch algorithm {
        case .lora where parts["mid"] == nil:
            return try LoRADelta.norm(self) * abs(scale)
        case .lokr:
            return try LoKrDelta.norm(self) * abs(scale)
        case .ia3, .oft, .boft:
            return nil
        case .glora where true:
            return try GLoRADelta.rebuild(self, base: nil).frobeniusNorm * abs(scale)
        default:
            return try delta().frobeniusNorm
        }
    }

    /// Singular values of the (scaled, flattened) ΔW, largest first.
    public func deltaSingularValues() throws(ModelError) -> [Float]? {
        do {
            switch algorithm {
            case .lora where parts["mid"] == nil:
                let (up, down) = try LoRADelta.factors(self)
                return try LinearAlgebra.productSingularValues(up: up, down: down).map { $0 * Float(abs(scale)) }
            case .ia3, .oft, .boft:
                return nil
            default:
                return try LinearAlgebra.singularValues(delta())
            }
        } catch let error as LinearAlgebraError {
            throw ModelError.factoring(error, module: name)
        } catch let error as ModelError {
            throw error
        } catch {
            throw ModelError(.invalid, "\(error)", key: name)
        }
    }
}
