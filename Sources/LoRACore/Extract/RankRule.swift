/// How many singular values a module keeps: a fixed rank, or chosen per
/// module from its spectrum the way kohya's resize_lora.py does.
public struct RankRule: Sendable, Equatable, CustomStringConvertible {
    public enum Method: String, Sendable, CaseIterable, Codable {
        /// Keep σᵢ > σ₀ / value.
        case ratio = "sv_ratio"
        /// Keep enough for Σσᵢ / Σσ ≥ value.
        case cumulative = "sv_cumulative"
        /// Keep enough for √(Σσᵢ² / Σσ²) ≥ value (Frobenius norm retained).
        case fro = "sv_fro"
    }

    /// The rank for a fixed rule; the cap for a dynamic one.
    public var maxRank: Int
    public var method: Method?
    public var value: Double

    public static func fixed(_ rank: Int) -> RankRule { RankRule(maxRank: rank, method: nil, value: 0) }
    public static func dynamic(_ method: Method, _ value: Double, maxRank: Int) -> RankRule { RankRule(maxRank: maxRank, method: method, value: value) }

    public var isDynamic: Bool { method != nil }

    /// Parse `sv_fro=0.9`, `sv_ratio=8`, `sv_cumulative=0.95`.
    public static func parseDynamic(_ text: String, maxRank: Int) throws(ModelError) -> RankRule {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let method = Method(rawValue: parts[0]), let value = Double(parts[1]), value > 0 else {
            throw ModelError(.mismatch, "dynamic rank '\(text)' is not sv_ratio=N, sv_fro=F or sv_cumulative=F")
        }
        if method != .ratio && value > 1 { throw ModelError(.mismatch, "\(method.rawValue) takes a fraction in (0, 1], got \(value)") }
        return .dynamic(method, value, maxRank: maxRank)
    }

    public var description: String {
        guard let method else { return "rank \(maxRank)" }
        return "\(method.rawValue)=\(formatNumber(value))" + (maxRank == Int.max ? "" : ", max rank \(maxRank)")
    }

    /// Whether the rule needs every singular value (the sum of all σ), not just
    /// the leading ones a randomized SVD returns.
    public var needsFullSpectrum: Bool { method == .cumulative }

    /// The rank for a module, exactly as resize_lora.py computes it (including
    /// its +1 and its clamps), from the leading singular values `s`.
    /// - Parameters:
    ///   - fullLength: min(out, in): the length of the full spectrum.
    ///   - totalEnergy: Σσ² over the whole spectrum (‖ΔW‖²).
    public func rank(singularValues s: [Float], fullLength: Int, totalEnergy: Double) -> Int {
        guard let first = s.first, first > 1e-6 else { return 1 }
        var rank: Int
        if let method {
            func clampIndex(_ i: Int) -> Int { max(1, min(i, fullLength - 1)) }
            switch method {
            case .ratio:
                let threshold = Double(first) / value
                rank = clampIndex(s.filter { Double($0) > threshold }.count) + 1
            case .cumulative:
                let total = s.reduce(0.0) { $0 + Double($1) }
                rank = clampIndex(searchSorted(s.map(Double.init), total: total, target: value) + 1) + 1
            case .fro:
                rank = clampIndex(searchSorted(s.map { Double($0) * Double($0) }, total: totalEnergy, target: value * value) + 1) + 1
            }
        } else {
            rank = maxRank
        }
        return max(1, min(rank, maxRank, fullLength))
    }

    /// torch.searchsorted(cumsum(values) / total, target): the first index whose
    /// running fraction reaches the target (the count when none does).
    private func searchSorted(_ values: [Double], total: Double, target: Double) -> Int {
        var running = 0.0
        for (i, v) in values.enumerated() {
            running += v
            if running / total >= target { return i }
        }
        return values.count
    }
}
