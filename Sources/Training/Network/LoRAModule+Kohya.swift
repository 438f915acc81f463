import Diffusion

extension LoRAModule {
    /// kohya's initialisation: down Kaiming-uniform with a = √5, i.e.
    /// U(−1/√fan_in, 1/√fan_in); up zeros, so training starts at the base model.
    /// (Values from `uniform`, a source of U(0, 1) draws; kohya's come from torch's generator.)
    public static func kohyaInitialized(name: String, shape: Shape, rank: Int, alpha: Float, uniform: () -> Float) -> LoRAModule {
        let fanIn: Int, outputs: Int
        switch shape {
        case let .linear(inputs, out): (fanIn, outputs) = (inputs, out)
        case let .conv(inputs, out, kernel, _, _): (fanIn, outputs) = (inputs * kernel * kernel, out)
        }
        let bound = 1 / Float(fanIn).squareRoot()
        let down = (0..<(rank * fanIn)).map { _ in (2 * uniform() - 1) * bound }
        return LoRAModule(name: name, shape: shape, rank: rank, alpha: alpha, down: down, up: [Float](repeating: 0, count: outputs * rank))
    }
}
