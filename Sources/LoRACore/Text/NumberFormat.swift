import Foundation

/// Compact number text: 16 → "16", 0.5 → "0.5", 1e-05 → "1e-05".
public func formatNumber(_ value: Double) -> String {
    if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
    let magnitude = abs(value)
    if magnitude >= 0.001 && magnitude < 1e6 {
        var text = String(Double((value * 10000).rounded() / 10000))
        if text.contains("e") { text = String(value) }
        return text
    }
    return String(Float(value))
}
