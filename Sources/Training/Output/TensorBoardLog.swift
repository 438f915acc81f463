import Foundation
import LoRACore

/// kohya's `--logging_dir`: a TensorBoard event file of the run's scalars, where
/// `tensorboard --logdir` (and the kohya_ss GUI's TensorBoard button) finds it.
///
/// The layout is accelerate's: `<logging_dir>/<log_prefix><YYYYmmddHHMMSS>/network_train/`
/// (`--log_tracker_name` renames the last part), holding
/// `events.out.tfevents.<seconds>.<host>.<pid>.0` as tensorboard's EventFileWriter names it.
/// The file is a sequence of TFRecords (u64 length, masked CRC-32C of it, the bytes, masked
/// CRC-32C of them), each an `Event` protobuf: first the header (`file_version`
/// "brain.Event:2"), then one event per scalar, as torch's `SummaryWriter.add_scalar` writes
/// old-style `simple_value` (float32) summaries. Written and flushed event by event, so an
/// interrupted run keeps its history. Checked byte for byte against
/// `Fixtures/golden/make_tensorboard_golden.py`.
public final class TensorBoardLog {
    /// The event file.
    public let path: String
    private let handle: FileHandle

    /// Creates the run folder and the event file. `now` stamps the folder and the file name.
    public convenience init(loggingDirectory: String, prefix: String = "", trackerName: String = "network_train", now: Date = Date()) throws(ModelError) {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyyMMddHHmmss"   // kohya's time.strftime("%Y%m%d%H%M%S", time.localtime())
        let folder = ((loggingDirectory as NSString).appendingPathComponent(prefix + formatter.string(from: now)) as NSString)
            .appendingPathComponent(trackerName)
        try AtomicOutput.createFolder(folder, what: "the TensorBoard log folder")
        let host = ProcessInfo.processInfo.hostName
        let path = (folder as NSString).appendingPathComponent(
            String(format: "events.out.tfevents.%010d.%@.%d.0", Int(now.timeIntervalSince1970), host, ProcessInfo.processInfo.processIdentifier))
        try self.init(path: path, wallTime: now.timeIntervalSince1970)
    }

    /// Writes the header event to a new file at `path`.
    public init(path: String, wallTime: Double) throws(ModelError) {
        self.path = path
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw ModelError(.io, "cannot write the TensorBoard log", file: path)
        }
        self.handle = handle
        var event = ProtobufWriter()
        event.double(1, wallTime)
        event.string(3, "brain.Event:2")
        var source = ProtobufWriter()
        source.string(1, "tensorboard.summary.writer.event_file_writer")
        event.message(10, source)
        write(record: event.bytes)
    }

    /// One event per scalar, all at `step` (kohya's global step, or the epoch for epoch averages).
    public func record(_ scalars: [(tag: String, value: Double)], step: Int, wallTime: Double = Date().timeIntervalSince1970) {
        for (tag, value) in scalars {
            var value32 = ProtobufWriter()
            value32.string(1, tag)
            value32.float(2, Float(value))
            var summary = ProtobufWriter()
            summary.message(1, value32)
            record(summary: summary, step: step, wallTime: wallTime)
        }
    }

    /// One event holding `summary` (a Summary protobuf).
    func record(summary: ProtobufWriter, step: Int = 0, wallTime: Double) {
        var event = ProtobufWriter()
        event.double(1, wallTime)
        if step != 0 { event.varint(2, UInt64(bitPattern: Int64(step))) }   // proto3 leaves a zero out
        event.message(5, summary)
        write(record: event.bytes)
    }

    /// kohya's per-step scalars (train_network.py `generate_step_logs`), in its order: the losses, the
    /// max-norm report, then each parameter group's rate under its description and, for D-Adaptation
    /// and Prodigy, d times that rate.
    public static func stepScalars(loss: Double, averageLoss: Double, learningRates: [(group: String, rate: Double)],
                                   adaptiveScale: Double?, maxNorm: LoRANetwork.MaxNormReport?) -> [(tag: String, value: Double)] {
        var scalars: [(tag: String, value: Double)] = [("loss/current", loss), ("loss/average", averageLoss)]
        if let maxNorm {
            scalars += [("max_norm/keys_scaled", Double(maxNorm.keysScaled)), ("max_norm/max_key_norm", maxNorm.maximumNorm)]
            scalars.append(("norm/avg_key_norm", maxNorm.averageNorm))
        }
        for (group, rate) in learningRates {
            scalars.append(("lr/\(group)", rate))
            if let d = adaptiveScale { scalars.append(("lr/d*lr/\(group)", d * rate)) }
        }
        return scalars
    }

    private func write(record data: [UInt8]) {
        var length = UInt64(data.count).littleEndian
        let lengthBytes = withUnsafeBytes(of: &length) { Array($0) }
        var frame = lengthBytes
        appendLittleEndian(&frame, maskedCRC32C(lengthBytes))
        frame += data
        appendLittleEndian(&frame, maskedCRC32C(data))
        handle.write(Data(frame))
    }

    private func appendLittleEndian(_ out: inout [UInt8], _ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    deinit { try? handle.close() }
}

/// TFRecord's checksum: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), rotated right by
/// 15 and offset by 0xa282ead8 (tensorflow's crc32c::Mask).
func maskedCRC32C(_ bytes: [UInt8]) -> UInt32 {
    let crc = crc32c(bytes)
    return ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8
}

func crc32c(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes { crc = crc32cTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
    return ~crc
}

private let crc32cTable: [UInt32] = (0..<256).map { index in
    var c = UInt32(index)
    for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
    return c
}

/// The protobuf wire format for the few field kinds an Event uses (varint, 64-bit, 32-bit,
/// length-delimited), fields written in the order given (the order protobuf's serializers use:
/// by field number).
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ field: Int, _ value: UInt64) {
        key(field, wireType: 0)
        rawVarint(value)
    }

    mutating func double(_ field: Int, _ value: Double) {
        key(field, wireType: 1)
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value.bitPattern >> UInt64(shift))) }
    }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, wireType: 5)
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value.bitPattern >> UInt32(shift))) }
    }

    mutating func string(_ field: Int, _ value: String) { lengthDelimited(field, Array(value.utf8)) }

    mutating func message(_ field: Int, _ value: ProtobufWriter) { lengthDelimited(field, value.bytes) }

    private mutating func lengthDelimited(_ field: Int, _ payload: [UInt8]) {
        key(field, wireType: 2)
        rawVarint(UInt64(payload.count))
        bytes += payload
    }

    private mutating func key(_ field: Int, wireType: UInt64) { rawVarint(UInt64(field) << 3 | wireType) }

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
}
