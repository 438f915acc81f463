/// A LoRA-family file (kohya LoRA/LoCon, LyCORIS, diffusers/PEFT) split into
/// modules. Keys that fit no known suffix are kept, not dropped, so reports
/// can say exactly what a loader would ignore.
public struct NetworkFile: Sendable {
    public let model: ModelFile
    public let modules: [NetworkModule]
    /// Keys that belong to no module.
    public let unparsedKeys: [String]
    /// Modules that lack a tensor their algorithm needs (lora_up without lora_down, ...).
    public let incompleteModules: [(name: String, roles: [String])]

    /// Suffix → role, longest suffixes first so `.lora_A.default.weight` wins over `.weight`.
    static let suffixes: [(suffix: String, role: String, naming: Naming)] = {
        let table: [(String, String, Naming)] = [
            (".lora_down.weight", "down", .kohya), (".lora_up.weight", "up", .kohya), (".lora_mid.weight", "mid", .kohya),
            (".lora_A.default.weight", "down", .diffusers), (".lora_B.default.weight", "up", .diffusers),
            (".lora_A.weight", "down", .diffusers), (".lora_B.weight", "up", .diffusers),
            (".lora_linear_layer.down.weight", "down", .diffusers), (".lora_linear_layer.up.weight", "up", .diffusers),
            ("_lora.down.weight", "down", .diffusers), ("_lora.up.weight", "up", .diffusers),
            (".lora.down.weight", "down", .diffusers), (".lora.up.weight", "up", .diffusers),
            (".lora_magnitude_vector", "magnitude", .diffusers),
            (".alpha", "alpha", .kohya), (".dora_scale", "dora_scale", .kohya),
            (".hada_w1_a", "hada_w1_a", .kohya), (".hada_w1_b", "hada_w1_b", .kohya),
            (".hada_w2_a", "hada_w2_a", .kohya), (".hada_w2_b", "hada_w2_b", .kohya),
            (".hada_t1", "hada_t1", .kohya), (".hada_t2", "hada_t2", .kohya),
            (".lokr_w1_a", "lokr_w1_a", .kohya), (".lokr_w1_b", "lokr_w1_b", .kohya), (".lokr_w1", "lokr_w1", .kohya),
            (".lokr_w2_a", "lokr_w2_a", .kohya), (".lokr_w2_b", "lokr_w2_b", .kohya), (".lokr_w2", "lokr_w2", .kohya),
            (".lokr_t1", "lokr_t1", .kohya), (".lokr_t2", "lokr_t2", .kohya),
            (".diff_b", "diff_b", .kohya), (".diff", "diff", .kohya),
            (".w_norm", "w_norm", .kohya), (".b_norm", "b_norm", .kohya),
            (".on_input", "on_input", .kohya),
            (".oft_blocks", "oft_blocks", .kohya), (".oft_diag", "oft_diag", .kohya), (".rescale", "rescale", .kohya),
            (".a1.weight", "a1", .kohya), (".a2.weight", "a2", .kohya), (".b1.weight", "b1", .kohya),
            (".b2.weight", "b2", .kohya), (".bm.weight", "bm", .kohya),
            (".weight", "weight", .kohya),
        ]
        return table.map { (suffix: $0.0, role: $0.1, naming: $0.2) }.sorted { $0.suffix.count > $1.suffix.count }
    }()

    public init(model: ModelFile) throws(ModelError) {
        self.model = model
        var groups: [String: [String: TensorView]] = [:]
        var order: [String] = []
        var namings: [String: Naming] = [:]
        var unparsed: [String] = []
        for tensor in model.tensors {
            guard let match = NetworkFile.suffixes.first(where: { tensor.name.hasSuffix($0.suffix) && tensor.name.count > $0.suffix.count }) else {
                unparsed.append(tensor.name)
                continue
            }
            let module = String(tensor.name.dropLast(match.suffix.count))
            if groups[module] == nil { order.append(module); groups[module] = [:] }
            if groups[module]![match.role] != nil {
                throw ModelError(.invalid, "two tensors give \(match.role) of module \(module)", file: model.path, key: tensor.name)
            }
            groups[module]![match.role] = tensor
            if match.naming == .diffusers || module.hasPrefix("unet.") || module.hasPrefix("text_encoder") {
                namings[module] = .diffusers
            }
        }

        var modules: [NetworkModule] = []
        var incomplete: [(name: String, roles: [String])] = []
        for name in order {
            let parts = groups[name]!
            let naming = namings[name] ?? .kohya
            switch try NetworkFile.classify(name: name, parts: parts, naming: naming, path: model.path) {
            case let .module(module): modules.append(module)
            case .incomplete: incomplete.append((name: name, roles: parts.keys.sorted()))
            case .notAModule: unparsed.append(contentsOf: parts.values.map(\.name))
            }
        }
        self.modules = modules
        self.unparsedKeys = unparsed
        self.incompleteModules = incomplete
    }

    private enum Classification {
        case module(NetworkModule)
        case incomplete
        case notAModule
    }

    private static func classify(name: String, parts: [String: TensorView], naming: Naming, path: String) throws(ModelError) -> Classification {
        let alpha = parts["alpha"]?.scalarValue()
        func has(_ role: String) -> Bool { parts[role] != nil }
        func shape(_ role: String) -> [Int] { parts[role]?.shape ?? [] }
        func fail(_ message: String) -> ModelError { ModelError(.invalid, message, file: path, key: name) }

        if has("up") || has("down") || has("mid") {
            guard let up = parts["up"], let down = parts["down"] else { return .incomplete }
            // Linear: down [r, in], up [out, r]. Conv: down [r, in, kh, kw], up [out, r, 1, 1].
            guard down.shape.count >= 2, up.shape.count >= 2 else { throw fail("lora factors must be at least 2-D") }
            let rank = down.shape[0]
            guard up.shape[1] == rank else {
                throw fail("lora_up has rank \(up.shape[1]) but lora_down has rank \(rank)")
            }
            var deltaShape = [up.shape[0]] + Array(down.shape.dropFirst())
            if let mid = parts["mid"] {
                guard mid.shape.count == 4, mid.shape[0] == rank, mid.shape[1] == rank else {
                    throw fail("lora_mid shape \(mid.shape) does not fit rank \(rank)")
                }
                deltaShape = [up.shape[0], down.shape[1], mid.shape[2], mid.shape[3]]
            }
            let scale = rank > 0 ? (alpha.map { $0 == 0 ? 1 : $0 / Double(rank) } ?? 1) : 0
            return .module(NetworkModule(name: name, algorithm: .lora, parts: parts, naming: naming, alpha: alpha,
                                         rank: rank, scale: scale, deltaShape: deltaShape))
        }
        if has("hada_w1_a") || has("hada_w1_b") || has("hada_w2_a") || has("hada_w2_b") {
            guard let w1a = parts["hada_w1_a"], let w1b = parts["hada_w1_b"], let w2a = parts["hada_w2_a"], let w2b = parts["hada_w2_b"] else {
                return .incomplete
            }
            let rank = w1b.shape.first ?? 0
            var deltaShape: [Int]?
            if let t1 = parts["hada_t1"], parts["hada_t2"] != nil {
                // Tucker: w?_a [r, out], w?_b [r, in], t [r, r, kh, kw].
                guard t1.shape.count == 4 else { throw fail("hada_t1 must be 4-D") }
                deltaShape = [w1a.shape.count > 1 ? w1a.shape[1] : 0, w1b.shape.count > 1 ? w1b.shape[1] : 0, t1.shape[2], t1.shape[3]]
            } else {
                guard w1a.shape.count == 2, w2a.shape.count == 2, w1b.shape.count >= 2, w2b.shape.count >= 2,
                      w1a.shape[1] == rank, w2a.shape[1] == w2b.shape[0], w1a.shape[0] == w2a.shape[0],
                      w1b.shape.dropFirst().reduce(1, *) == w2b.shape.dropFirst().reduce(1, *) else {
                    throw fail("LoHa factor shapes do not agree: w1_a \(w1a.shape), w1_b \(w1b.shape), w2_a \(w2a.shape), w2_b \(w2b.shape)")
                }
                deltaShape = [w1a.shape[0]] + Array(w1b.shape.dropFirst())
            }
            let scale = rank > 0 ? (alpha.map { $0 == 0 ? 1 : $0 / Double(rank) } ?? 1) : 0
            return .module(NetworkModule(name: name, algorithm: .loha, parts: parts, naming: naming, alpha: alpha,
                                         rank: rank, scale: scale, deltaShape: deltaShape))
        }
        if has("lokr_w1") || has("lokr_w1_a") || has("lokr_w2") || has("lokr_w2_a") {
            let w1Shape: [Int]
            if let w1 = parts["lokr_w1"] { w1Shape = w1.shape } else if let a = parts["lokr_w1_a"], let b = parts["lokr_w1_b"],
                a.shape.count == 2, b.shape.count == 2, a.shape[1] == b.shape[0] { w1Shape = [a.shape[0], b.shape[1]] } else { return .incomplete }
            var w2Shape: [Int]
            if let w2 = parts["lokr_w2"] {
                w2Shape = w2.shape
            } else if let a = parts["lokr_w2_a"], let b = parts["lokr_w2_b"] {
                if let t2 = parts["lokr_t2"] {
                    // Tucker: w2_a [r, c], w2_b [r, d], t2 [r, r, kh, kw].
                    guard a.shape.count == 2, b.shape.count == 2, t2.shape.count == 4 else { throw fail("LoKr Tucker factor shapes are malformed") }
                    w2Shape = [a.shape[1], b.shape[1], t2.shape[2], t2.shape[3]]
                } else {
                    guard a.shape.count == 2, b.shape.count >= 2, a.shape[1] == b.shape[0] else { throw fail("lokr_w2_a/b shapes do not agree") }
                    w2Shape = [a.shape[0]] + Array(b.shape.dropFirst())
                }
            } else {
                return .incomplete
            }
            guard w1Shape.count == 2, w2Shape.count >= 2 else { throw fail("LoKr factors must be 2-D (w1) and 2-D/4-D (w2)") }
            var deltaShape = [w1Shape[0] * w2Shape[0], w1Shape[1] * w2Shape[1]]
            if w2Shape.count == 4 { deltaShape += [w2Shape[2], w2Shape[3]] }
            // LyCORIS: scale is alpha/r only when a factor is decomposed; both full means 1.
            let decomposedRank = parts["lokr_w2_b"]?.shape.first ?? parts["lokr_w1_b"]?.shape.first
            let scale: Double
            if let r = decomposedRank, r > 0 { scale = alpha.map { $0 == 0 ? 1 : $0 / Double(r) } ?? 1 } else { scale = 1 }
            return .module(NetworkModule(name: name, algorithm: .lokr, parts: parts, naming: naming, alpha: alpha,
                                         rank: decomposedRank, scale: scale, deltaShape: deltaShape))
        }
        if let diff = parts["diff"] {
            return .module(NetworkModule(name: name, algorithm: .full, parts: parts, naming: naming, alpha: alpha,
                                         rank: nil, scale: 1, deltaShape: diff.shape))
        }
        if parts["w_norm"] != nil || parts["b_norm"] != nil {
            return .module(NetworkModule(name: name, algorithm: .norm, parts: parts, naming: naming, alpha: nil,
                                         rank: nil, scale: 1, deltaShape: parts["w_norm"]?.shape))
        }
        if has("on_input") {
            guard parts["weight"] != nil else { return .incomplete }
            return .module(NetworkModule(name: name, algorithm: .ia3, parts: parts, naming: naming, alpha: nil,
                                         rank: nil, scale: 1, deltaShape: nil))
        }
        if let blocks = parts["oft_blocks"] ?? parts["oft_diag"] {
            let algorithm: Algorithm = blocks.shape.count == 4 ? .boft : .oft
            return .module(NetworkModule(name: name, algorithm: algorithm, parts: parts, naming: naming, alpha: alpha,
                                         rank: blocks.shape.first, scale: 1, deltaShape: nil))
        }
        if has("a1") || has("a2") || has("b1") || has("b2") {
            guard let a1 = parts["a1"], let a2 = parts["a2"], let b1 = parts["b1"], let b2 = parts["b2"] else { return .incomplete }
            // Orientation changed between LyCORIS versions: the factor whose first
            // dimension is the output size is the "up" one.
            let out = max(b1.shape.first ?? 0, b2.shape.first ?? 0)
            let rank = min(a1.shape.min() ?? 0, a2.shape.min() ?? 0)
            let inputs = max(a1.shape.max() ?? 0, a2.shape.max() ?? 0)
            let scale = rank > 0 ? (alpha.map { $0 == 0 ? 1 : $0 / Double(rank) } ?? 1) : 1
            return .module(NetworkModule(name: name, algorithm: .glora, parts: parts, naming: naming, alpha: alpha,
                                         rank: rank, scale: scale, deltaShape: [out, inputs]))
        }
        if has("alpha") || has("dora_scale") || has("magnitude") || has("rescale") || has("diff_b") {
            return .incomplete
        }
        return .notAModule
    }
}
