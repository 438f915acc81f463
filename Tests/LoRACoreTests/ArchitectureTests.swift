import Foundation
import LoRACore
import XCTest

/// The architecture walker against the real SD1.5 key lists (an independent
/// record of a released checkpoint and of a kohya LoRA trained on it).
final class ArchitectureTests: XCTestCase {
    private func readTSV(_ name: String) throws -> [(String, String, [Int])] {
        let text = try String(contentsOfFile: Repo.fixture("reference/" + name), encoding: .utf8)
        return text.split(separator: "\n").dropFirst().map { line in
            let parts = line.split(separator: "\t").map(String.init)
            let shape = parts[2].dropFirst().dropLast().split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            return (parts[0], parts[1], shape)
        }
    }

    func testSD1LayoutEqualsTheReleasedCheckpointKeysAndShapes() throws {
        let reference = try readTSV("sd15_checkpoint_keys.tsv")
        let layout = ModelLayout(.real(.sd1))
        let ours = Dictionary(uniqueKeysWithValues: layout.tensors.map { ($0.name, $0) })
        XCTAssertEqual(reference.count, 1145)
        XCTAssertEqual(Set(ours.keys), Set(reference.map(\.0)), "same key set")
        for (name, dtype, shape) in reference {
            guard let spec = ours[name] else { continue }
            XCTAssertEqual(spec.shape, shape, name)
            if dtype == "int64" { XCTAssertEqual(spec.dtype, .i64, name) }
            if dtype == "int32" { XCTAssertEqual(spec.dtype, .i32, name) }
        }
    }

    func testSD1LoRATargetsEqualAKohyaRank32LoRA() throws {
        let reference = try readTSV("sd15_kohya_lora_keys.tsv")
        var modules: [String: [Int]] = [:] // name → [out, in...] from the factors
        var downs: [String: [Int]] = [:], ups: [String: [Int]] = [:]
        for (key, _, shape) in reference {
            if key.hasSuffix(".lora_down.weight") { downs[String(key.dropLast(17))] = shape }
            if key.hasSuffix(".lora_up.weight") { ups[String(key.dropLast(15))] = shape }
        }
        for (name, down) in downs { modules[name] = [ups[name]![0]] + down.dropFirst() }
        let targets = ModelLayout(.real(.sd1)).targets.filter { $0.set == .attention }
        XCTAssertEqual(targets.count, 264)
        XCTAssertEqual(Set(targets.map(\.kohyaName)), Set(modules.keys))
        for t in targets {
            XCTAssertEqual(t.shape, modules[t.kohyaName], t.kohyaName)
        }
        XCTAssertEqual(targets.filter { $0.component == .unet }.count, 192)
        XCTAssertEqual(targets.filter { $0.component == .textEncoder1 }.count, 72)
    }

    /// Module counts that kohya prints in its training logs.
    func testModuleCountsPerFamily() {
        func count(_ family: Family, _ component: Component? = nil, sets: Set<TargetSet>) -> Int {
            ModelLayout(.real(family)).targets.filter { sets.contains($0.set) && (component == nil || $0.component == component!) }.count
        }
        XCTAssertEqual(count(.sdxl, .unet, sets: [.attention]), 722)
        XCTAssertEqual(count(.sdxl, .textEncoder1, sets: [.attention]) + count(.sdxl, .textEncoder2, sets: [.attention]), 264)
        XCTAssertEqual(count(.sd2, .textEncoder1, sets: [.attention]), 138)
        XCTAssertEqual(count(.sd1, .unet, sets: [.attention, .resnet]), 278)
        XCTAssertEqual(count(.sdxl, .unet, sets: [.attention, .resnet]), 788)
    }

    func testBlockIdsFollowLoRABlockWeight() {
        let sd1 = KeyMap.sd1, sdxl = KeyMap.sdxl
        let cases: [(KeyMap, String, String)] = [
            (sd1, "lora_te_text_model_encoder_layers_3_mlp_fc1", "BASE"),
            (sd1, "lora_unet_down_blocks_0_attentions_0_proj_in", "IN01"),
            (sd1, "lora_unet_down_blocks_2_attentions_1_transformer_blocks_0_attn2_to_v", "IN08"),
            (sd1, "lora_unet_down_blocks_1_downsamplers_0_conv", "IN06"),
            (sd1, "lora_unet_mid_block_attentions_0_proj_out", "M00"),
            (sd1, "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_ff_net_2", "OUT03"),
            (sd1, "lora_unet_up_blocks_0_upsamplers_0_conv", "OUT02"),
            (sd1, "lora_unet_up_blocks_3_attentions_2_proj_in", "OUT11"),
            (sdxl, "lora_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_q", "IN04"),
            (sdxl, "lora_unet_output_blocks_5_1_proj_out", "OUT05"),
            (sdxl, "lora_unet_output_blocks_2_2_conv", "OUT02"),
            (sdxl, "lora_te2_text_model_encoder_layers_31_self_attn_v_proj", "BASE"),
        ]
        for (map, name, block) in cases {
            XCTAssertEqual(map.target(forModule: name)?.block?.description, block, name)
        }
        XCTAssertEqual(BlockLists.sd17.map(\.description).joined(separator: ","),
                       "BASE,IN01,IN02,IN04,IN05,IN07,IN08,M00,OUT03,OUT04,OUT05,OUT06,OUT07,OUT08,OUT09,OUT10,OUT11")
    }

    func testNameVariantsResolveToTheSameWeight() {
        let sd1 = KeyMap.sd1
        let kohya = sd1.target(forModule: "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q")
        XCTAssertEqual(kohya?.checkpointKey, "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight")
        XCTAssertEqual(sd1.target(forModule: "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q")?.checkpointKey, kohya?.checkpointKey)
        XCTAssertEqual(
            sd1.target(forModule: "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora")?.checkpointKey, kohya?.checkpointKey)
        XCTAssertEqual(sd1.target(forModule: "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q")?.checkpointKey, kohya?.checkpointKey)
        XCTAssertEqual(sd1.target(forModule: "lora_te1_text_model_encoder_layers_0_mlp_fc1")?.kohyaName, "lora_te_text_model_encoder_layers_0_mlp_fc1")
        // SD2 packs q/k/v into OpenCLIP's in_proj_weight.
        let k = KeyMap.sd2.target(forModule: "lora_te_text_model_encoder_layers_5_self_attn_k_proj")
        XCTAssertEqual(k?.checkpointKey, "cond_stage_model.model.transformer.resblocks.5.attn.in_proj_weight")
        XCTAssertEqual(k?.rows, 1024..<2048)
        XCTAssertNil(KeyMap.sd2.target(forModule: "lora_te_text_model_encoder_layers_23_self_attn_k_proj"), "SD2 LoRAs stop at layer 22")
        // SDXL: kohya's SGM names and diffusers names both work.
        let sgm = KeyMap.sdxl.target(forModule: "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k")
        XCTAssertEqual(sgm?.shape, [640, 2048])
        XCTAssertEqual(KeyMap.sdxl.target(forModule: "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k")?.checkpointKey, sgm?.checkpointKey)
        XCTAssertEqual(KeyMap.sdxl.target(forModule: "lora_te2_text_model_encoder_layers_0_mlp_fc1")?.checkpointKey,
                       "conditioner.embedders.1.model.transformer.resblocks.0.mlp.c_fc.weight")
    }
}
