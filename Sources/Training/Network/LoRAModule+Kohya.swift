import Diffusion

extension LoRAModule {
    /// kohya's initialisation: down Kaiming-uniform with a = √5, i.e.
    /// U(−1/√fan_in, 1/√fan_in); up zeros, so training starts at the base model.
    /// (Values from `uniform`, a source of U(0, 1) draws; kohya's come from torch's generator.)
    /// `tucker` (LyCORIS's LoCon with use_tucker, on a kernel wider than 1×1): down a 1×1 kernel, then the core
    /// lora_mid [rank, rank, kh, kw], Kaiming-uniform as well (LoConModule.__init__). `trainedScalar` (LyCORIS's
    /// use_scalar): a trained scalar from 0, and up Kaiming-uniform instead of zeros (ΔW still starts at 0).
    public static func kohyaInitialized(name: String, shape: Shape, rank: Int, alpha: Float, tucker: Bool = false, trainedScalar: Bool = false,
                                        uniform: () -> Float) -> LoRAModule {
        func kaiming(_ count: Int, fanIn: Int) -> [Float] { kaimingUniform(count, fanIn: fanIn, uniform: uniform) }
        let scalar = trainedScalar ? ModuleScalar(trainedAs: name) : ModuleScalar()
        var down: [Float], mid: [Float]? = nil
        if tucker, case let .conv(inputs, _, kernel, _, _) = shape, kernel > 1 {
            down = kaiming(rank * inputs, fanIn: inputs)
            mid = kaiming(rank * rank * kernel * kernel, fanIn: rank * kernel * kernel)
        } else {
            let fanIn = shape.columns
            down = kaiming(rank * fanIn, fanIn: fanIn)
        }
        let up = trainedScalar ? kaiming(shape.outputs * rank, fanIn: rank) : [Float](repeating: 0, count: shape.outputs * rank)
        return LoRAModule(name: name, shape: shape, rank: rank, alpha: alpha, down: down, up: up, mid: mid, scalar: scalar)
    }
}

extension LoRAModule {
    /// sd-scripts' LoRA-FA (networks/lora_fa.py, after arXiv:2308.03303): down drawn from N(0, 2/(in + rank)), with `in`
    /// the layer's input features or channels (not times the kernel's area), and frozen; up zeros, the only tensor trained.
    /// (`normal`: that many N(0, 1) draws.)
    public static func loraFAInitialized(name: String, shape: Shape, rank: Int, alpha: Float, normal: (Int) -> [Float]) -> LoRAModule {
        let inputs: Int = { switch shape { case let .linear(inputs, _), let .conv(inputs, _, _, _, _): return inputs } }()
        let std = (2 / Float(inputs + rank)).squareRoot()
        let module = LoRAModule(name: name, shape: shape, rank: rank, alpha: alpha, down: normal(rank * shape.columns).map { $0 * std },
                                up: [Float](repeating: 0, count: shape.outputs * rank))
        module.down.isFrozen = true
        return module
    }
}

/// torch's `kaiming_uniform_(w, a=√5)`, kohya's and LyCORIS's initialisation of their first factors: U(−1/√fan_in, 1/√fan_in)
/// (fan_in: a tensor's values per output row), `count` draws from `uniform`'s U(0, 1).
func kaimingUniform(_ count: Int, fanIn: Int, uniform: () -> Float) -> [Float] {
    let bound = 1 / Float(fanIn).squareRoot()
    return (0..<count).map { _ in (2 * uniform() - 1) * bound }
}
