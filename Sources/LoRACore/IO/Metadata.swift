/// The string→string `__metadata__` map of a safetensors file, in file order.
public struct Metadata: Sendable, Equatable, Sequence {
    public private(set) var pairs: [(key: String, value: String)]

    public init(_ pairs: [(String, String)] = []) {
        self.pairs = pairs.map { (key: $0.0, value: $0.1) }
    }

    public init(_ dictionary: [String: String]) {
        self.pairs = dictionary.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
    }

    public static func == (lhs: Metadata, rhs: Metadata) -> Bool {
        lhs.pairs.count == rhs.pairs.count && zip(lhs.pairs, rhs.pairs).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public var isEmpty: Bool { pairs.isEmpty }
    public var count: Int { pairs.count }
    public var keys: [String] { pairs.map(\.key) }

    public subscript(key: String) -> String? {
        get { pairs.first(where: { $0.key == key })?.value }
        set {
            if let index = pairs.firstIndex(where: { $0.key == key }) {
                if let newValue { pairs[index].value = newValue } else { pairs.remove(at: index) }
            } else if let newValue {
                pairs.append((key: key, value: newValue))
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: String)]> {
        pairs.makeIterator()
    }

    /// A value that starts with `{` or `[` parsed as JSON, as A1111 does for
    /// `ss_tag_frequency`, `ss_dataset_dirs` and friends.
    public func json(_ key: String) -> JSON? {
        guard let text = self[key], let first = text.first, first == "{" || first == "[" else { return nil }
        return try? JSONParser.parse(text)
    }
}
