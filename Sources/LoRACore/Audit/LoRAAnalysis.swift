import Foundation
import Dispatch
import LinearAlgebra

/// A value and how many modules have it (rank 32 ×264, ...).
public struct ValueCount: Sendable, Codable, Equatable {
    public var value: String
    public var count: Int
    public init(value: String, count: Int) {
        self.value = value
        self.count = count
    }
}

/// One row of the per-block table, in LoRA Block Weight order.
public struct BlockRow: Sendable, Codable, Equatable {
    public var block: String
    public var modules: Int
    /// Mean and max of ‖ΔW‖_F (alpha/rank applied) over the block's modules.
    public var meanNorm: Double?
    public var maxNorm: Double?
}

public struct ModuleDetail: Sendable, Codable, Equatable {
    public var name: String
    public var algorithm: String
    public var component: String
    public var block: String?
    /// The checkpoint weight it changes, when the module is known.
    public var target: String?
    public var shape: [Int]?
    public var rank: Int?
    public var alpha: Double?
    public var scale: Double
    public var norm: Double?
    /// Ranks holding 90% and 99% of ΔW's energy (with --svd).
    public var rank90: Int?
    public var rank99: Int?
}

/// What `lora-inspect` reports about a LoRA-family file.
public struct LoRAReport: Sendable, Codable, Equatable {
    public var networkType: String
    public var naming: String
    public var family: FamilyGuess
    public var moduleCount: Int
    public var modulesByComponent: [ValueCount]
    public var convModules: Int
    public var algorithms: [ValueCount]
    public var ranks: [ValueCount]
    public var alphas: [ValueCount]
    public var scales: [ValueCount]
    public var parameters: Int
    public var dtypes: [ValueCount]
    public var blocks: [BlockRow]
    public var modules: [ModuleDetail]
}

public struct LoRAAnalysis {
    public struct Options: Sendable {
        public var scanValues = true
        public var effectiveRank = false
        public init(scanValues: Bool = true, effectiveRank: Bool = false) {
            self.scanValues = scanValues
            self.effectiveRank = effectiveRank
        }
    }

    public static func analyze(_ network: NetworkFile, options: Options = Options(),
                               progress: (@Sendable (Int) -> Void)? = nil) throws(ModelError) -> (LoRAReport, [Finding]) {
        var findings: [Finding] = []
        let metadata = network.model.metadata
        let family = FamilyDetection.lora(network)
        let keyMap = family.family.map(KeyMap.real)
        let modules = network.modules

        // Resolve each module to the checkpoint weight it changes.
        let targets: [LoRATarget?] = modules.map { keyMap?.target(forModule: $0.name) }

        // Norms and (optionally) spectra, in parallel over modules.
        let wantSpectra = options.effectiveRank
        let measured: [(norm: Double?, spectrum: [Float]?)]
        do {
            measured = try Parallel.map(modules.count, cost: { modules[$0].deltaShape?.reduce(1, *) ?? 1 }) { i throws(ModelError) in
                let norm = try modules[i].deltaNorm()
                // A module with NaN/Inf has no spectrum; the value scan reports it (nan-values).
                let spectrum = wantSpectra && (norm?.isFinite ?? true) ? try modules[i].deltaSingularValues() : nil
                return (norm, spectrum)
            }
        } catch {
            throw error.inFile(network.model.path)
        }
        let norms = measured.map(\.norm)

        // Details per module.
        var details: [ModuleDetail] = []
        for (i, module) in modules.enumerated() {
            let target = targets[i]
            var detail = ModuleDetail(name: module.name, algorithm: module.algorithm.rawValue,
                                      component: componentLabel(target?.component ?? guessComponent(module.name), family: family.family),
                                      block: target?.block?.description, target: target?.checkpointKey,
                                      shape: module.weightShape(for: target),
                                      rank: module.rank, alpha: module.alpha,
                                      scale: module.scale, norm: norms[i])
            if let spectrum = measured[i].spectrum {
                detail.rank90 = energyRank(spectrum, 0.90)
                detail.rank99 = energyRank(spectrum, 0.99)
            }
            details.append(detail)
        }

        // Value health: NaN / Inf anywhere in the file.
        if options.scanValues {
            let stats = TensorScan.scan(network.model.tensors, progress: progress)
            let nan = zip(network.model.tensors, stats).filter { ($0.1?.nanCount ?? 0) > 0 }.map(\.0.name)
            let inf = zip(network.model.tensors, stats).filter { ($0.1?.infCount ?? 0) > 0 }.map(\.0.name)
            if !nan.isEmpty {
                findings.append(Finding("nan-values", .error, "\(nan.count) tensor(s) contain NaN: the LoRA will produce black or broken images", keys: nan))
            }
            if !inf.isEmpty {
                findings.append(Finding("inf-values", .error, "\(inf.count) tensor(s) contain infinities", keys: inf))
            }
        }

        findings += moduleFindings(modules: modules, norms: norms, targets: targets, family: family, metadata: metadata)
        findings += structureFindings(network: network, targets: targets, family: family, keyMap: keyMap)

        // Summary numbers.
        var byComponent: [String: Int] = [:]
        for d in details { byComponent[d.component, default: 0] += 1 }
        let componentOrder = ["text encoder", "text encoder 1", "text encoder 2", "unet", "unknown"]
        let report = LoRAReport(
            networkType: networkType(modules: modules, metadata: metadata, naming: network.modules.first?.naming ?? .kohya),
            naming: (modules.first?.naming ?? .kohya) == .kohya ? "kohya (lora_unet_/lora_te_)" : "diffusers/PEFT (unet./text_encoder.)",
            family: family,
            moduleCount: modules.count,
            modulesByComponent: componentOrder.compactMap { name in byComponent[name].map { ValueCount(value: name, count: $0) } },
            convModules: zip(modules, targets).filter { module, target in
                if case let .conv(kernel)? = target?.kind { return kernel > 1 }
                return module.kernel > 1
            }.count,
            algorithms: distribution(modules.map(\.algorithm.rawValue)),
            ranks: distribution(modules.compactMap { $0.rank.map(String.init) }, numeric: true),
            alphas: distribution(modules.compactMap { $0.alpha.map(formatNumber) }, numeric: true),
            scales: distribution(modules.filter { $0.rank != nil }.map { formatNumber($0.scale) }, numeric: true),
            parameters: network.model.tensors.filter { !$0.name.hasSuffix(".alpha") }.reduce(0) { $0 + $1.elementCount },
            dtypes: distribution(network.model.tensors.filter { !$0.name.hasSuffix(".alpha") }.map(\.dtype.shortName)),
            blocks: blockTable(details, family: family.family),
            modules: details)
        return (report, findings)
    }

    // MARK: findings

    static func moduleFindings(modules: [NetworkModule], norms: [Double?], targets: [LoRATarget?],
                               family: FamilyGuess, metadata: Metadata) -> [Finding] {
        var findings: [Finding] = []
        let known = norms.compactMap { $0 }
        let dead = zip(modules, norms).filter { $0.1 == 0 }.map(\.0.name)
        if !dead.isEmpty {
            let teDead = dead.filter { $0.contains("_te") || $0.hasPrefix("text_encoder") }.count
            let teTotal = modules.filter { $0.name.contains("_te") || $0.name.hasPrefix("text_encoder") }.count
            var message = "\(dead.count) module(s) have an all-zero ΔW (untrained: lora_up is still at its zero init)"
            if teTotal > 0 && teDead == teTotal { message += "; the whole text-encoder part is untrained" }
            findings.append(Finding("dead-modules", .warning, message, keys: dead))
        }
        let positive = known.filter { $0 > 0 }.sorted()
        if positive.count >= 8 {
            let logs = positive.map { log10($0) }
            let median = logs[logs.count / 2]
            let deviations = logs.map { abs($0 - median) }.sorted()
            let mad = max(deviations[deviations.count / 2], 0.05)
            var exploding: [String] = [], tiny: [String] = []
            for (module, norm) in zip(modules, norms) {
                guard let norm, norm > 0 else { continue }
                let z = (log10(norm) - median) / mad
                // A module ~30× above the file's typical norm and far outside its spread.
                if z > 6 && log10(norm) - median > 1.5 { exploding.append(module.name) }
                if z < -6 && median - log10(norm) > 3 { tiny.append(module.name) }
            }
            let medianNorm = positive[positive.count / 2]
            if !exploding.isEmpty {
                findings.append(Finding("exploding-norms", .warning,
                        "\(exploding.count) module(s) have ‖ΔW‖ over 30× the file's median (\(formatNumber(medianNorm))): likely overtrained or broken",
                                        keys: exploding))
            }
            if !tiny.isEmpty {
                findings.append(Finding("near-zero-modules", .info,
                                        "\(tiny.count) module(s) have ‖ΔW‖ over 1000× below the file's median: they do almost nothing", keys: tiny))
            }
        }
        let alphaAbove = modules.filter { m in
            guard let a = m.alpha, let r = m.rank, r > 0 else { return false }
            return a > Double(r)
        }
        if !alphaAbove.isEmpty {
            findings.append(Finding("alpha-above-rank", .warning,
                                    "\(alphaAbove.count) module(s) have alpha above rank (scale > 1 amplifies the weights; usually a mistake)",
                                    keys: alphaAbove.map(\.name)))
        }
        let noAlpha = modules.filter { ($0.algorithm == .lora || $0.algorithm == .loha) && $0.alpha == nil }
        if !noAlpha.isEmpty && modules.first?.naming == .kohya {
            findings.append(Finding("missing-alpha", .info, "\(noAlpha.count) module(s) have no alpha tensor: loaders use alpha = rank (scale 1)",
                                    keys: noAlpha.map(\.name)))
        }
        let dora = modules.filter(\.hasDoRA)
        if !dora.isEmpty {
            findings.append(
                Finding(
                    "dora", .info, "\(dora.count) module(s) use DoRA: their effect depends on the base weights, and UIs disagree on its conventions",
                                    keys: dora.map(\.name)))
        }
        return findings
    }

    static func structureFindings(network: NetworkFile, targets: [LoRATarget?], family: FamilyGuess, keyMap: KeyMap?) -> [Finding] {
        var findings: [Finding] = []
        let modules = network.modules
        let metadata = network.model.metadata
        if !network.incompleteModules.isEmpty {
            findings.append(Finding("orphan-tensors", .error,
                                    "\(network.incompleteModules.count) module(s) are incomplete (e.g. lora_up without lora_down, or an alpha alone)",
                                    keys: network.incompleteModules.map { "\($0.name) [\($0.roles.joined(separator: ", "))]" }))
        }
        if !network.unparsedKeys.isEmpty {
            findings.append(Finding("unparsed-keys", .warning,
                                    "\(network.unparsedKeys.count) key(s) are not part of any LoRA module; loaders will ignore them",
                                    keys: network.unparsedKeys))
        }
        if family.family == nil && family.otherArchitecture == nil {
            findings.append(Finding("family-unknown", .info, "the base model family cannot be told from the tensors or the metadata"))
        }
        if let other = family.otherArchitecture {
            findings.append(Finding("other-architecture", .info, "this LoRA targets \(other), not Stable Diffusion 1/2/XL; module checks are skipped"))
        }
        if let disagreement = family.metadataDisagreement, let fam = family.family {
            findings.append(Finding("family-metadata-mismatch", .warning,
                                    "the tensors say \(fam.rawValue) but \(disagreement): UIs that trust metadata will file it wrongly"))
        }
        if keyMap != nil {
            let unknown = zip(modules, targets).filter { $0.1 == nil }.map(\.0.name)
            if !unknown.isEmpty {
                findings.append(Finding("unknown-modules", .warning,
                        "\(unknown.count) module(s) match no layer of \(family.family!.rawValue): loaders report \"lora key not loaded\" and skip them",
                                        keys: unknown))
            }
            // Two modules writing the same weight (e.g. both lora_te_ and lora_te1_ names).
            var seen: [String: String] = [:]
            var duplicates: [String] = []
            for (module, target) in zip(modules, targets) {
                guard let target else { continue }
                let id = target.checkpointKey + (target.rows.map { "[\($0.lowerBound)]" } ?? "")
                if let first = seen[id] { duplicates.append("\(module.name) = \(first)") } else { seen[id] = module.name }
            }
            if !duplicates.isEmpty {
                findings.append(Finding("duplicate-modules", .error,
                                        "\(duplicates.count) module(s) target a layer that another module already targets: it would be applied twice",
                                        keys: duplicates))
            }
            // Shapes: only meaningful when the file has the released model's widths.
            // The rule merging applies (NetworkModule.deltaFits), so what merges is never flagged.
            let comparable = zip(modules, targets).compactMap { m, t -> (NetworkModule, LoRATarget)? in
                guard let t, t.kind != .norm, m.deltaFits(t.shape) != nil else { return nil }
                return (m, t)
            }
            let mismatched = comparable.filter { $0.0.deltaFits($0.1.shape) == false }
            if !comparable.isEmpty && mismatched.count < comparable.count / 2 && !mismatched.isEmpty {
                findings.append(Finding("shape-mismatch", .error,
                                        "\(mismatched.count) module(s) have shapes that do not fit \(family.family!.rawValue): merging or loading them fails",
                                        keys: mismatched.map { "\($0.0.name) \($0.0.deltaShape!) vs \($0.1.shape)" }))
            }
            if family.family != .sdxl && modules.contains(where: { $0.name.hasPrefix("lora_te1_") }) {
                findings.append(Finding("te1-prefix", .info,
                        "text-encoder modules use the lora_te1_ prefix (as diffusers writes it): A1111, ComfyUI and diffusers load them, kohya's "
                            + "merge_lora.py skips them"
                    ))
            }
        }
        let dtypes = Set(network.model.tensors.filter { !$0.name.hasSuffix(".alpha") && $0.dtype.isFloatingPoint }.map(\.dtype))
        if dtypes.count > 1 {
            findings.append(Finding("mixed-dtypes", .info, "factors use several dtypes: \(dtypes.sorted().map(\.shortName).joined(separator: ", "))"))
        }
        if metadata.isEmpty && network.model.format == .safetensors {
            findings.append(Finding("no-metadata", .info,
                                    "no metadata: AUTOMATIC1111 labels the LoRA 'Unknown' and may hide it; add ss_base_model_version when publishing"))
        } else if family.family == .sdxl && metadata[.baseModelVersion] == nil && metadata[.specArchitecture] == nil && !metadata.isEmpty {
            findings.append(Finding("sdxl-unlabelled", .warning,
                    "SDXL LoRA with metadata but no ss_base_model_version: AUTOMATIC1111 files it as SD1 and hides it while an SDXL model is loaded"))
        }
        if !network.model.headerStartsStrictly {
            findings.append(Finding("header-whitespace", .warning, "the safetensors header does not start with {\" : AUTOMATIC1111 refuses such files"))
        }
        return findings
    }

    // MARK: summaries

    static func networkType(modules: [NetworkModule], metadata: Metadata, naming: Naming) -> String {
        let module = metadata[.networkModule] ?? ""
        var algo = ""
        if let args = metadata.json(.networkArgs), let value = args["algo"]?.stringValue { algo = value.lowercased() }
        var kinds = Set(modules.map(\.algorithm))
        var label: String
        if module.contains("dylora") || algo == "dylora" {
            label = "DyLoRA"
        } else if module.contains("lora_fa") {
            label = "LoRA-FA"
        } else if kinds == [.lora] || kinds.isEmpty {
            label = modules.contains(where: { $0.kernel > 1 }) || algo == "locon" ? "LoCon" : "LoRA"
        } else {
            kinds.remove(.norm)
            if kinds.count == 1, let only = kinds.first {
                label = only == .lora && modules.contains(where: { $0.kernel > 1 }) ? "LoCon" : only.rawValue
            } else {
                label = kinds.map(\.rawValue).sorted().joined(separator: " + ")
            }
        }
        if modules.contains(where: \.hasDoRA) { label += " (DoRA)" }
        if naming == .diffusers { label += ", diffusers/PEFT layout" }
        return label
    }

    static func blockTable(_ details: [ModuleDetail], family: Family?) -> [BlockRow] {
        var groups: [String: [Double]] = [:]
        var counts: [String: Int] = [:]
        for d in details {
            let key = d.block ?? "other"
            counts[key, default: 0] += 1
            if let n = d.norm { groups[key, default: []].append(n) }
        }
        var rows: [BlockRow] = []
        for block in BlockLists.reportOrder(family).map(\.description) + ["other"] {
            guard let count = counts[block] else { continue }
            let norms = groups[block] ?? []
            rows.append(BlockRow(block: block, modules: count,
                                 meanNorm: norms.isEmpty ? nil : norms.reduce(0, +) / Double(norms.count),
                                 maxNorm: norms.max()))
        }
        return rows
    }

    static func energyRank(_ spectrum: [Float], _ fraction: Double) -> Int {
        let energies = spectrum.map { Double($0) * Double($0) }
        let total = energies.reduce(0, +)
        guard total > 0 else { return 0 }
        var running = 0.0
        for (i, e) in energies.enumerated() {
            running += e
            if running >= fraction * total - 1e-12 * total { return i + 1 }
        }
        return energies.count
    }

    static func componentLabel(_ component: Component, family: Family?) -> String {
        switch component {
        case .unet: return "unet"
        case .textEncoder1: return family == .sdxl ? "text encoder 1" : "text encoder"
        case .textEncoder2: return "text encoder 2"
        default: return "unknown"
        }
    }

    static func guessComponent(_ name: String) -> Component {
        let kohya = KeyMap.kohyaStyleName(name)
        if kohya.hasPrefix("lora_unet_") { return .unet }
        if kohya.hasPrefix("lora_te2_") { return .textEncoder2 }
        if kohya.hasPrefix("lora_te") { return .textEncoder1 }
        return .other
    }

    static func distribution(_ values: [String], numeric: Bool = false) -> [ValueCount] {
        var counts: [String: Int] = [:]
        for v in values { counts[v, default: 0] += 1 }
        return counts.map { ValueCount(value: $0.key, count: $0.value) }.sorted { a, b in
            if a.count != b.count { return a.count > b.count }
            if numeric, let x = Double(a.value), let y = Double(b.value) { return x < y }
            return a.value < b.value
        }
    }
}
