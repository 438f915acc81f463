import Foundation

/// Renders inspection reports for people: a full report per file, or one
/// summary line per file for a folder of downloads. Every string that comes
/// from a file is shown through `TerminalText.escape` before colours are added.
public enum ReportText {
    public struct Style: Sendable {
        public var showModules = false
        public var showMetadata = false
        public var color = false
        public init(showModules: Bool = false, showMetadata: Bool = false, color: Bool = false) {
            self.showModules = showModules
            self.showMetadata = showMetadata
            self.color = color
        }
    }

    public static func full(_ r: InspectionReport, style: Style = Style()) -> String {
        var out: [String] = []
        func line(_ label: String, _ value: String, indent: Int = 2, width: Int = 12) {
            ReportText.line(&out, label, value, indent: indent, width: width)
        }
        let path = esc(r.path)
        out.append(style.color ? "\u{1B}[1m\(path)\u{1B}[0m" : path)
        if r.kind == .invalid || r.kind == .dangerous {
            line("status", r.kind == .dangerous ? "DANGEROUS — not loaded" : "unreadable")
            appendFindings(r.findings, to: &out, style: style)
            return out.joined(separator: "\n")
        }
        line("file", "\(byteSize(r.size)), \(r.format?.rawValue ?? "?"), \(r.tensors) tensors")
        if let h = r.hashes {
            var parts: [String] = []
            if let v3 = h.autoV3 { parts.append("AutoV3 \(v3.uppercased())") }
            if r.kind == .lora && h.autoV3 == nil { parts.append("A1111 LoRA hash \(h.a1111LoRAHash)") }
            parts.append("AutoV2 \(h.autoV2.uppercased())")
            parts.append("AutoV1 \(h.autoV1)")
            line("hashes", parts.joined(separator: " · "))
            line("sha256", h.sha256)
        } else if let legacy = r.legacyHash {
            line("hashes", "AutoV1 \(legacy) (full hashes skipped: use --hash)")
        }
        if let lora = r.lora { appendLoRA(lora, to: &out, style: style) }
        if let ckpt = r.checkpoint { appendCheckpoint(ckpt, to: &out) }
        if r.kind == .vae || r.kind == .embedding || r.kind == .unknown { line("kind", r.kind.rawValue) }
        if let training = r.training {
            out.append("")
            out.append("training")
            for f in training.fields { line(f.label, f.value, indent: 2, width: 22) }
            if !training.topTags.isEmpty {
                let tags = training.topTags.map { "\($0.tag) (\($0.count))" }.joined(separator: ", ")
                line("top tags", "\(tags)\(training.distinctTags > training.topTags.count ? " … \(training.distinctTags) distinct" : "")",
                     indent: 2, width: 22)
            }
        }
        if style.showMetadata, let metadata = r.metadata, !metadata.isEmpty {
            out.append("")
            out.append("metadata")
            for key in metadata.keys.sorted() {
                let value = metadata[key]!
                line(key, value.count > 160 ? String(value.prefix(157)) + "..." : value, indent: 2, width: 34)
            }
        }
        appendFindings(r.findings, to: &out, style: style)
        return out.joined(separator: "\n")
    }

    static func line(_ out: inout [String], _ label: String, _ value: String, indent: Int = 2, width: Int = 12) {
        let label = esc(label)
        out.append(String(repeating: " ", count: indent) + label.padding(toLength: max(width, label.count + 1), withPad: " ", startingAt: 0) + esc(value))
    }

    private static func esc(_ text: String) -> String { TerminalText.escape(text) }

    private static func appendLoRA(_ lora: LoRAReport, to out: inout [String], style: Style) {
        func l(_ a: String, _ b: String) { line(&out, a, b) }
        var family = lora.family.label
        if lora.family.evidence == .metadata { family += " (from metadata only)" }
        l("type", "\(lora.networkType) for \(family)")
        if !lora.family.reasons.isEmpty { l("evidence", lora.family.reasons.joined(separator: "; ")) }
        let components = lora.modulesByComponent.map { "\($0.value) \($0.count)" }.joined(separator: ", ")
        l("modules", "\(lora.moduleCount) (\(components))\(lora.convModules > 0 ? ", \(lora.convModules) conv" : "")")
        if lora.algorithms.count > 1 { l("algorithms", counts(lora.algorithms)) }
        if !lora.ranks.isEmpty { l("rank", counts(lora.ranks)) }
        if !lora.alphas.isEmpty { l("alpha", counts(lora.alphas)) }
        if !lora.scales.isEmpty { l("scale", counts(lora.scales) + " (alpha/rank)") }
        l("parameters", "\(count(lora.parameters)), \(lora.dtypes.map(\.value).joined(separator: "+"))")
        if !lora.blocks.isEmpty {
            out.append("")
            out.append("blocks (LoRA Block Weight order; ‖ΔW‖ with alpha/rank applied)")
            out.append("  block   modules   mean ‖ΔW‖   max ‖ΔW‖")
            for row in lora.blocks {
                out.append("  " + row.block.padding(toLength: 8, withPad: " ", startingAt: 0)
                           + String(row.modules).leftPad(7) + "   " + (row.meanNorm.map(norm) ?? "-").leftPad(9)
                           + "   " + (row.maxNorm.map(norm) ?? "-").leftPad(9))
            }
        }
        if style.showModules {
            out.append("")
            out.append("modules")
            for m in lora.modules {
                var parts = [m.algorithm]
                if let r = m.rank { parts.append("rank \(r)") }
                if let a = m.alpha { parts.append("alpha \(formatNumber(a))") }
                if let s = m.shape { parts.append("\(s)") }
                if let n = m.norm { parts.append("‖ΔW‖ \(norm(n))") }
                if let r90 = m.rank90, let r99 = m.rank99 { parts.append("r90 \(r90) r99 \(r99)") }
                if let b = m.block { parts.append(b) }
                out.append("  \(esc(m.name))  " + esc(parts.joined(separator: ", ")))
            }
        } else if lora.modules.contains(where: { $0.rank90 != nil }) {
            let r90 = lora.modules.compactMap(\.rank90), r99 = lora.modules.compactMap(\.rank99)
            out.append("")
            out.append("effective rank (rank holding 90% / 99% of ΔW's energy; --modules lists each)")
            out.append("  90%: median \(median(r90)), max \(r90.max() ?? 0)   99%: median \(median(r99)), max \(r99.max() ?? 0)")
        }
    }

    private static func appendCheckpoint(_ c: CheckpointReport, to out: inout [String]) {
        func l(_ a: String, _ b: String) { line(&out, a, b) }
        l("type", "checkpoint, \(c.family.label)")
        if !c.family.reasons.isEmpty { l("evidence", c.family.reasons.joined(separator: "; ")) }
        l("parameters", "\(count(c.parameters)) (\(c.precision.map { "\($0.value) \(count($0.count))" }.joined(separator: ", ")))")
        l("ema", c.hasEMA ? "yes (EMA weights present)" : "no")
        if let key = c.stateDictKey { l("nested", "weights under '\(key)'") }
        out.append("")
        out.append("components")
        for row in c.components {
            out.append("  " + row.component.padding(toLength: 32, withPad: " ", startingAt: 0) + String(row.tensors).leftPad(6)
                       + " tensors " + count(row.parameters).leftPad(8) + "  " + row.dtypes.map(\.value).joined(separator: "+"))
        }
        if !c.extras.isEmpty {
            out.append("")
            out.append("other entries")
            for e in c.extras { out.append("  " + esc(e.value)) }
        }
    }

    private static func appendFindings(_ findings: [Finding], to out: inout [String], style: Style) {
        out.append("")
        if findings.isEmpty {
            out.append("findings: none")
            return
        }
        out.append("findings")
        for f in findings {
            var label = f.severity.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            if style.color {
                let code = f.severity == .error ? "31" : (f.severity == .warning ? "33" : "36")
                label = "\u{1B}[\(code)m\(label)\u{1B}[0m"
            }
            out.append("  \(label)\(f.code): \(esc(f.message))")
            if let keys = f.keys, !keys.isEmpty {
                let more = (f.count ?? keys.count) > keys.count ? " … (\(f.count! - keys.count) more)" : ""
                out.append("          " + esc(keys.joined(separator: ", ")) + more)
            }
        }
    }

    // MARK: summary table

    public static let summaryHeader = ["file", "kind", "family", "type", "rank/alpha", "modules", "size", "hash", "findings"]

    public static func summaryRow(_ r: InspectionReport) -> [String] {
        let name = (r.path as NSString).lastPathComponent
        var family = "-", type = "-", rankAlpha = "-", modules = "-"
        if let lora = r.lora {
            family = lora.family.label + (lora.family.evidence == .metadata ? "?" : "")
            type = lora.networkType
            let rank = lora.ranks.count == 1 ? lora.ranks[0].value : (lora.ranks.isEmpty ? "-" : "mixed")
            let alpha = lora.alphas.count == 1 ? lora.alphas[0].value : (lora.alphas.isEmpty ? "-" : "mixed")
            rankAlpha = "\(rank)/\(alpha)"
            modules = String(lora.moduleCount)
        } else if let c = r.checkpoint {
            family = c.family.label
            type = c.precision.first?.value ?? "-"
        }
        // The hash users look up: A1111's LoRA hash for LoRAs, AutoV2 for checkpoints.
        let hash = r.hashes.map { h in (r.kind == .lora ? h.a1111LoRAHash : h.autoV2).uppercased() } ?? (r.legacyHash ?? "-")
        let worst = r.worstSeverity
        let findings: String
        switch r.kind {
        case .dangerous: findings = "DANGEROUS"
        case .invalid: findings = "unreadable"
        default:
            let errors = r.findings.filter { $0.severity == .error }.count
            let warnings = r.findings.filter { $0.severity == .warning }.count
            findings = worst == nil || worst == .info ? "ok" : [errors > 0 ? "\(errors) error" : nil, warnings > 0 ? "\(warnings) warning" : nil]
                .compactMap { $0 }.joined(separator: ", ")
        }
        return [name, r.kind.rawValue, family, type, rankAlpha, modules, r.size > 0 ? byteSize(r.size) : "-", hash, findings].map(esc)
    }

    /// Align rows into columns.
    public static func table(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        var widths = [Int](repeating: 0, count: first.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }

    // MARK: formatting helpers

    /// A duration as a clock: "12:34", or "1:02:05" from an hour on (progress bars' ETA, training estimates).
    public static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    public static func byteSize(_ bytes: Int) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 { value /= 1000; unit += 1 }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f ", value) + units[unit]
    }

    static func count(_ n: Int) -> String {
        if n >= 1_000_000_000 { return String(format: "%.2f B", Double(n) / 1e9) }
        if n >= 1_000_000 { return String(format: "%.1f M", Double(n) / 1e6) }
        if n >= 1_000 { return String(format: "%.1f K", Double(n) / 1e3) }
        return String(n)
    }

    static func counts(_ values: [ValueCount]) -> String {
        values.prefix(6).map { values.count == 1 ? $0.value : "\($0.value) ×\($0.count)" }.joined(separator: ", ")
            + (values.count > 6 ? ", …" : "")
    }

    static func norm(_ v: Double) -> String { v == 0 ? "0" : (v >= 0.01 && v < 1000 ? String(format: "%.4f", v) : String(format: "%.3e", v)) }

    static func median(_ values: [Int]) -> Int { values.isEmpty ? 0 : values.sorted()[values.count / 2] }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
