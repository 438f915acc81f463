#!/bin/bash

__lora-train_cursor_index_in_current_word() {
    local remaining="${COMP_LINE}"

    local word
    for word in "${COMP_WORDS[@]::COMP_CWORD}"; do
        remaining="${remaining##*([[:space:]])"${word}"*([[:space:]])}"
    done

    local -ir index="$((COMP_POINT - ${#COMP_LINE} + ${#remaining}))"
    if [[ "${index}" -le 0 ]]; then
        printf 0
    else
        printf %s "${index}"
    fi
}

# positional arguments:
#
# - 1: the current (sub)command's count of positional arguments
#
# required variables:
#
# - repeating_flags: the repeating flags that the current (sub)command can accept
# - non_repeating_flags: the non-repeating flags that the current (sub)command can accept
# - repeating_options: the repeating options that the current (sub)command can accept
# - non_repeating_options: the non-repeating options that the current (sub)command can accept
# - positional_number: value ignored
# - unparsed_words: unparsed words from the current command line
#
# modified variables:
#
# - non_repeating_flags: remove flags for this (sub)command that are already on the command line
# - non_repeating_options: remove options for this (sub)command that are already on the command line
# - positional_number: set to the current positional number
# - unparsed_words: remove all flags, options, and option values for this (sub)command
__lora-train_offer_flags_options() {
    local -ir positional_count="${1}"
    positional_number=0

    local was_flag_option_terminator_seen=false
    local is_parsing_option_value=false

    local -ar unparsed_word_indices=("${!unparsed_words[@]}")
    local -i word_index
    for word_index in "${unparsed_word_indices[@]}"; do
        if "${is_parsing_option_value}"; then
            # This word is an option value:
            # Reset marker for next word iff not currently the last word
            [[ "${word_index}" -ne "${unparsed_word_indices[${#unparsed_word_indices[@]} - 1]}" ]] && is_parsing_option_value=false
            unset "unparsed_words[${word_index}]"
            # Do not process this word as a flag or an option
            continue
        fi

        local word="${unparsed_words["${word_index}"]}"
        if ! "${was_flag_option_terminator_seen}"; then
            case "${word}" in
            --)
                unset "unparsed_words[${word_index}]"
                # by itself -- is a flag/option terminator, but if it is the last word, it is the start of a completion
                if [[ "${word_index}" -ne "${unparsed_word_indices[${#unparsed_word_indices[@]} - 1]}" ]]; then
                    was_flag_option_terminator_seen=true
                fi
                continue
                ;;
            -*)
                # ${word} is a flag or an option
                # If ${word} is an option, mark that the next word to be parsed is an option value
                local option
                for option in "${repeating_options[@]}" "${non_repeating_options[@]}"; do
                    [[ "${word}" = "${option}" ]] && is_parsing_option_value=true && break
                done

                # Remove ${word} from ${non_repeating_flags} or ${non_repeating_options} so it isn't offered again
                local not_found=true
                local -i index
                for index in "${!non_repeating_flags[@]}"; do
                    if [[ "${non_repeating_flags[${index}]}" = "${word}" ]]; then
                        unset "non_repeating_flags[${index}]"
                        non_repeating_flags=("${non_repeating_flags[@]}")
                        not_found=false
                        break
                    fi
                done
                if "${not_found}"; then
                    for index in "${!non_repeating_flags[@]}"; do
                        if [[ "${non_repeating_flags[${index}]}" = "${word}" ]]; then
                            unset "non_repeating_flags[${index}]"
                            non_repeating_flags=("${non_repeating_flags[@]}")
                            break
                        fi
                    done
                fi
                unset "unparsed_words[${word_index}]"
                continue
                ;;
            esac
        fi

        # ${word} is neither a flag, nor an option, nor an option value
        if [[ "${positional_number}" -lt "${positional_count}" || "${positional_count}" -lt 0 ]]; then
            # ${word} is a positional
            ((positional_number++))
            unset "unparsed_words[${word_index}]"
        else
            if [[ -z "${word}" ]]; then
                # Could be completing a flag, option, or subcommand
                positional_number=-1
            else
                # ${word} is a subcommand or invalid, so stop processing this (sub)command
                positional_number=-2
            fi
            break
        fi
    done

    unparsed_words=("${unparsed_words[@]}")

    if\
        ! "${was_flag_option_terminator_seen}"\
        && ! "${is_parsing_option_value}"\
        && [[ ("${cur}" = -* && "${positional_number}" -ge 0) || "${positional_number}" -eq -1 ]]
    then
        COMPREPLY+=($(compgen -W "${repeating_flags[*]} ${non_repeating_flags[*]} ${repeating_options[*]} ${non_repeating_options[*]}" -- "${cur}"))
    fi
}

__lora-train_add_completions() {
    local completion
    while IFS='' read -r completion; do
        COMPREPLY+=("${completion}")
    done < <(IFS=$'\n' compgen "${@}" -- "${cur}")
}

__lora-train_custom_complete() {
    if [[ -n "${cur}" || -z ${COMP_WORDS[${COMP_CWORD}]} || "${COMP_LINE:${COMP_POINT}:1}" != ' ' ]]; then
        local -ar words=("${COMP_WORDS[@]}")
    else
        local -ar words=("${COMP_WORDS[@]::${COMP_CWORD}}" '' "${COMP_WORDS[@]:${COMP_CWORD}}")
    fi

    "${COMP_WORDS[0]}" "${@}" "${words[@]}"
}

_lora-train() {
    local state
    state="$(shopt -p;shopt -po)"
    trap "${state//$'\n'/;}" RETURN
    shopt -s extglob
    set +o history +o posix

    local -xr SAP_SHELL=bash
    local -x SAP_SHELL_VERSION
    SAP_SHELL_VERSION="$(IFS='.';printf %s "${BASH_VERSINFO[*]}")"
    local -r SAP_SHELL_VERSION

    local -r cur="${2}"
    local -r prev="${3}"

    local -i positional_number
    local -a unparsed_words=("${COMP_WORDS[@]:1:${COMP_CWORD}}")

    local -a repeating_flags=()
    local -a non_repeating_flags=(--output-config --output_config --enable-bucket --enable_bucket --bucket-no-upscale --bucket_no_upscale --shuffle-caption --shuffle_caption --enable-wildcard --enable_wildcard --flip-aug --flip_aug --random-crop --random_crop --alpha-mask --alpha_mask --masked-loss --masked_loss --color-aug --color_aug --weighted-captions --weighted_captions --cache-latents --cache_latents --cache-latents-to-disk --cache_latents_to_disk --network-train-unet-only --network_train_unet_only --network-train-text-encoder-only --network_train_text_encoder_only --dim-from-weights --dim_from_weights --noise-offset-random-strength --noise_offset_random_strength --ip-noise-gamma-random-strength --ip_noise_gamma_random_strength --debiased-estimation-loss --debiased_estimation_loss --scale-v-pred-loss-like-noise-pred --scale_v_pred_loss_like_noise_pred --zero-terminal-snr --zero_terminal_snr --sample-at-first --sample_at_first --save-state-on-train-end --save_state_on_train_end --save-state --save_state --skip-until-initial-step --skip_until_initial_step --no-metadata --no_metadata --log-config --log_config --gradient-checkpointing --gradient_checkpointing --find-lr --find_lr --dry-run --dry_run --debug-dataset --debug_dataset --quiet -q --json --version -h --help)
    local -a repeating_options=(--network-args --network_args --base-weights --base_weights --base-weights-multiplier --base_weights_multiplier --optimizer-args --optimizer_args --text-encoder-lr --text_encoder_lr --lr-scheduler-args --lr_scheduler_args)
    local -a non_repeating_options=(--config-file --config_file --config -m --model --pretrained_model_name_or_path --vae --tokenizer --train-data-dir --train_data_dir --dataset-config --dataset_config --in-json --in_json --dataset-repeats --dataset_repeats --reg-data-dir --reg_data_dir --caption-extension --caption_extension --caption_extention --resolution --min-bucket-reso --min_bucket_reso --max-bucket-reso --max_bucket_reso --bucket-reso-steps --bucket_reso_steps --train-batch-size --train_batch_size --keep-tokens --keep_tokens --keep-tokens-separator --keep_tokens_separator --caption-separator --caption_separator --caption-prefix --caption_prefix --caption-suffix --caption_suffix --caption-dropout-rate --caption_dropout_rate --caption-dropout-every-n-epochs --caption_dropout_every_n_epochs --caption-tag-dropout-rate --caption_tag_dropout_rate --secondary-separator --secondary_separator --token-warmup-min --token_warmup_min --token-warmup-step --token_warmup_step --face-crop-aug-range --face_crop_aug_range --resize-interpolation --resize_interpolation --prior-loss-weight --prior_loss_weight --max-token-length --max_token_length --clip-skip --clip_skip --network-module --network_module --network-dim --network_dim --network-alpha --network_alpha --network-dropout --network_dropout --scale-weight-norms --scale_weight_norms --network-weights --network_weights --optimizer-type --optimizer_type --learning-rate --learning_rate --lr --unet-lr --unet_lr --lr-scheduler --lr_scheduler --lr-scheduler-type --lr_scheduler_type --lr-scheduler-timescale --lr_scheduler_timescale --lr-scheduler-min-lr-ratio --lr_scheduler_min_lr_ratio --lr-decay-steps --lr_decay_steps --lr-warmup-steps --lr_warmup_steps --lr-scheduler-num-cycles --lr_scheduler_num_cycles --lr-scheduler-power --lr_scheduler_power --max-grad-norm --max_grad_norm --gradient-accumulation-steps --gradient_accumulation_steps --noise-offset --noise_offset --adaptive-noise-scale --adaptive_noise_scale --multires-noise-iterations --multires_noise_iterations --multires-noise-discount --multires_noise_discount --ip-noise-gamma --ip_noise_gamma --loss-type --loss_type --huber-schedule --huber_schedule --huber-c --huber_c --huber-scale --huber_scale --min-snr-gamma --min_snr_gamma --v-pred-like-loss --v_pred_like_loss --min-timestep --min_timestep --max-timestep --max_timestep --sample-prompts --sample_prompts --sample-every-n-epochs --sample_every_n_epochs --sample-every-n-steps --sample_every_n_steps --sample-sampler --sample_sampler --output-dir --output_dir --output-name --output_name --max-train-epochs --max_train_epochs --max-train-steps --max_train_steps --save-every-n-epochs --save_every_n_epochs --save-n-epoch-ratio --save_n_epoch_ratio --save-every-n-steps --save_every_n_steps --save-precision --save_precision --save-last-n-epochs --save_last_n_epochs --save-last-n-steps --save_last_n_steps --save-last-n-epochs-state --save_last_n_epochs_state --save-last-n-steps-state --save_last_n_steps_state --resume --initial-epoch --initial_epoch --initial-step --initial_step --save-model-as --save_model_as --seed --mixed-precision --mixed_precision --training-comment --training_comment --metadata-title --metadata_title --metadata-author --metadata_author --metadata-description --metadata_description --metadata-license --metadata_license --metadata-tags --metadata_tags --metadata-usage-hint --metadata_usage_hint --metadata-trigger-phrase --metadata_trigger_phrase --metadata-thumbnail --metadata_thumbnail --metadata-merged-from --metadata_merged_from --metadata-preprocessor --metadata_preprocessor --metadata-is-negative-embedding --metadata_is_negative_embedding --logging-dir --logging_dir --log-prefix --log_prefix --log-tracker-name --log_tracker_name --log-with --log_with --console-log-file --console_log_file --validation-split --validation_split --validation-seed --validation_seed --validate-every-n-steps --validate_every_n_steps --validate-every-n-epochs --validate_every_n_epochs --max-validation-steps --max_validation_steps --find-lr-steps --find_lr_steps)
    __lora-train_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--config-file'|'--config_file'|'--config')
        __lora-train_add_completions -o plusdirs -fX '!*.@(toml)'
        return
        ;;
    '-m'|'--model'|'--pretrained_model_name_or_path')
        __lora-train_add_completions -o plusdirs -fX '!*.@(safetensors|ckpt)'
        return
        ;;
    '--vae')
        __lora-train_add_completions -o plusdirs -fX '!*.@(safetensors|ckpt|pt)'
        return
        ;;
    '--tokenizer')
        __lora-train_add_completions -f
        return
        ;;
    '--train-data-dir'|'--train_data_dir')
        __lora-train_add_completions -d
        return
        ;;
    '--dataset-config'|'--dataset_config')
        __lora-train_add_completions -o plusdirs -fX '!*.@(toml)'
        return
        ;;
    '--in-json'|'--in_json')
        __lora-train_add_completions -o plusdirs -fX '!*.@(json|jsonl)'
        return
        ;;
    '--dataset-repeats'|'--dataset_repeats')
        return
        ;;
    '--reg-data-dir'|'--reg_data_dir')
        __lora-train_add_completions -d
        return
        ;;
    '--caption-extension'|'--caption_extension'|'--caption_extention')
        return
        ;;
    '--resolution')
        return
        ;;
    '--min-bucket-reso'|'--min_bucket_reso')
        return
        ;;
    '--max-bucket-reso'|'--max_bucket_reso')
        return
        ;;
    '--bucket-reso-steps'|'--bucket_reso_steps')
        return
        ;;
    '--train-batch-size'|'--train_batch_size')
        return
        ;;
    '--keep-tokens'|'--keep_tokens')
        return
        ;;
    '--keep-tokens-separator'|'--keep_tokens_separator')
        return
        ;;
    '--caption-separator'|'--caption_separator')
        return
        ;;
    '--caption-prefix'|'--caption_prefix')
        return
        ;;
    '--caption-suffix'|'--caption_suffix')
        return
        ;;
    '--caption-dropout-rate'|'--caption_dropout_rate')
        return
        ;;
    '--caption-dropout-every-n-epochs'|'--caption_dropout_every_n_epochs')
        return
        ;;
    '--caption-tag-dropout-rate'|'--caption_tag_dropout_rate')
        return
        ;;
    '--secondary-separator'|'--secondary_separator')
        return
        ;;
    '--token-warmup-min'|'--token_warmup_min')
        return
        ;;
    '--token-warmup-step'|'--token_warmup_step')
        return
        ;;
    '--face-crop-aug-range'|'--face_crop_aug_range')
        return
        ;;
    '--resize-interpolation'|'--resize_interpolation')
        return
        ;;
    '--prior-loss-weight'|'--prior_loss_weight')
        return
        ;;
    '--max-token-length'|'--max_token_length')
        return
        ;;
    '--clip-skip'|'--clip_skip')
        return
        ;;
    '--network-module'|'--network_module')
        return
        ;;
    '--network-dim'|'--network_dim')
        return
        ;;
    '--network-alpha'|'--network_alpha')
        return
        ;;
    '--network-args'|'--network_args')
        return
        ;;
    '--network-dropout'|'--network_dropout')
        return
        ;;
    '--scale-weight-norms'|'--scale_weight_norms')
        return
        ;;
    '--network-weights'|'--network_weights')
        __lora-train_add_completions -o plusdirs -fX '!*.@(safetensors)'
        return
        ;;
    '--base-weights'|'--base_weights')
        __lora-train_add_completions -o plusdirs -fX '!*.@(safetensors)'
        return
        ;;
    '--base-weights-multiplier'|'--base_weights_multiplier')
        return
        ;;
    '--optimizer-type'|'--optimizer_type')
        __lora-train_add_completions -W 'AdamW'$'\n''AdamW8bit'$'\n''Lion'$'\n''SGDNesterov'$'\n''Prodigy'$'\n''DAdaptAdam'$'\n''Adafactor'$'\n''DAdaptLion'$'\n''DAdaptSGD'$'\n''DAdaptAdaGrad'$'\n''DAdaptation'$'\n''DAdaptAdan'$'\n''DAdaptAdanIP'$'\n''AdamWScheduleFree'$'\n''RAdamScheduleFree'$'\n''SGDScheduleFree'$'\n''pytorch_optimizer.CAME'$'\n''came_pytorch.CAME'$'\n''bitsandbytes.optim.AdEMAMix'$'\n''prodigyplus.ProdigyPlusScheduleFree'
        return
        ;;
    '--optimizer-args'|'--optimizer_args')
        return
        ;;
    '--learning-rate'|'--learning_rate'|'--lr')
        return
        ;;
    '--unet-lr'|'--unet_lr')
        return
        ;;
    '--text-encoder-lr'|'--text_encoder_lr')
        return
        ;;
    '--lr-scheduler'|'--lr_scheduler')
        __lora-train_add_completions -W 'constant'$'\n''constant_with_warmup'$'\n''linear'$'\n''cosine'$'\n''cosine_with_restarts'$'\n''polynomial'$'\n''inverse_sqrt'$'\n''cosine_with_min_lr'$'\n''warmup_stable_decay'$'\n''piecewise_constant'
        return
        ;;
    '--lr-scheduler-type'|'--lr_scheduler_type')
        __lora-train_add_completions -W 'StepLR'$'\n''MultiStepLR'$'\n''ExponentialLR'$'\n''ConstantLR'$'\n''LinearLR'$'\n''PolynomialLR'$'\n''CosineAnnealingLR'$'\n''CosineAnnealingWarmRestarts'
        return
        ;;
    '--lr-scheduler-timescale'|'--lr_scheduler_timescale')
        return
        ;;
    '--lr-scheduler-min-lr-ratio'|'--lr_scheduler_min_lr_ratio')
        return
        ;;
    '--lr-decay-steps'|'--lr_decay_steps')
        return
        ;;
    '--lr-scheduler-args'|'--lr_scheduler_args')
        return
        ;;
    '--lr-warmup-steps'|'--lr_warmup_steps')
        return
        ;;
    '--lr-scheduler-num-cycles'|'--lr_scheduler_num_cycles')
        return
        ;;
    '--lr-scheduler-power'|'--lr_scheduler_power')
        return
        ;;
    '--max-grad-norm'|'--max_grad_norm')
        return
        ;;
    '--gradient-accumulation-steps'|'--gradient_accumulation_steps')
        return
        ;;
    '--noise-offset'|'--noise_offset')
        return
        ;;
    '--adaptive-noise-scale'|'--adaptive_noise_scale')
        return
        ;;
    '--multires-noise-iterations'|'--multires_noise_iterations')
        return
        ;;
    '--multires-noise-discount'|'--multires_noise_discount')
        return
        ;;
    '--ip-noise-gamma'|'--ip_noise_gamma')
        return
        ;;
    '--loss-type'|'--loss_type')
        __lora-train_add_completions -W 'l2'$'\n''l1'$'\n''huber'$'\n''smooth_l1'
        return
        ;;
    '--huber-schedule'|'--huber_schedule')
        __lora-train_add_completions -W 'snr'$'\n''exponential'$'\n''constant'
        return
        ;;
    '--huber-c'|'--huber_c')
        return
        ;;
    '--huber-scale'|'--huber_scale')
        return
        ;;
    '--min-snr-gamma'|'--min_snr_gamma')
        return
        ;;
    '--v-pred-like-loss'|'--v_pred_like_loss')
        return
        ;;
    '--min-timestep'|'--min_timestep')
        return
        ;;
    '--max-timestep'|'--max_timestep')
        return
        ;;
    '--sample-prompts'|'--sample_prompts')
        __lora-train_add_completions -o plusdirs -fX '!*.@(txt|json|toml)'
        return
        ;;
    '--sample-every-n-epochs'|'--sample_every_n_epochs')
        return
        ;;
    '--sample-every-n-steps'|'--sample_every_n_steps')
        return
        ;;
    '--sample-sampler'|'--sample_sampler')
        __lora-train_add_completions -W 'ddim'$'\n''pndm'$'\n''euler'$'\n''euler_a'$'\n''k_euler'$'\n''k_euler_a'$'\n''dpmsolver'$'\n''dpmsolver++'$'\n''dpmsingle'$'\n''lms'$'\n''k_lms'$'\n''heun'$'\n''dpm_2'$'\n''k_dpm_2'$'\n''dpm_2_a'$'\n''k_dpm_2_a'
        return
        ;;
    '--output-dir'|'--output_dir')
        __lora-train_add_completions -d
        return
        ;;
    '--output-name'|'--output_name')
        return
        ;;
    '--max-train-epochs'|'--max_train_epochs')
        return
        ;;
    '--max-train-steps'|'--max_train_steps')
        return
        ;;
    '--save-every-n-epochs'|'--save_every_n_epochs')
        return
        ;;
    '--save-n-epoch-ratio'|'--save_n_epoch_ratio')
        return
        ;;
    '--save-every-n-steps'|'--save_every_n_steps')
        return
        ;;
    '--save-precision'|'--save_precision')
        __lora-train_add_completions -W 'fp16'$'\n''bf16'$'\n''fp32'
        return
        ;;
    '--save-last-n-epochs'|'--save_last_n_epochs')
        return
        ;;
    '--save-last-n-steps'|'--save_last_n_steps')
        return
        ;;
    '--save-last-n-epochs-state'|'--save_last_n_epochs_state')
        return
        ;;
    '--save-last-n-steps-state'|'--save_last_n_steps_state')
        return
        ;;
    '--resume')
        __lora-train_add_completions -d
        return
        ;;
    '--initial-epoch'|'--initial_epoch')
        return
        ;;
    '--initial-step'|'--initial_step')
        return
        ;;
    '--save-model-as'|'--save_model_as')
        return
        ;;
    '--seed')
        return
        ;;
    '--mixed-precision'|'--mixed_precision')
        return
        ;;
    '--training-comment'|'--training_comment')
        return
        ;;
    '--metadata-title'|'--metadata_title')
        return
        ;;
    '--metadata-author'|'--metadata_author')
        return
        ;;
    '--metadata-description'|'--metadata_description')
        return
        ;;
    '--metadata-license'|'--metadata_license')
        return
        ;;
    '--metadata-tags'|'--metadata_tags')
        return
        ;;
    '--metadata-usage-hint'|'--metadata_usage_hint')
        return
        ;;
    '--metadata-trigger-phrase'|'--metadata_trigger_phrase')
        return
        ;;
    '--metadata-thumbnail'|'--metadata_thumbnail')
        __lora-train_add_completions -o plusdirs -fX '!*.@(png|jpg|jpeg|webp)'
        return
        ;;
    '--metadata-merged-from'|'--metadata_merged_from')
        return
        ;;
    '--metadata-preprocessor'|'--metadata_preprocessor')
        return
        ;;
    '--metadata-is-negative-embedding'|'--metadata_is_negative_embedding')
        return
        ;;
    '--logging-dir'|'--logging_dir')
        __lora-train_add_completions -d
        return
        ;;
    '--log-prefix'|'--log_prefix')
        return
        ;;
    '--log-tracker-name'|'--log_tracker_name')
        return
        ;;
    '--log-with'|'--log_with')
        return
        ;;
    '--console-log-file'|'--console_log_file')
        __lora-train_add_completions -f
        return
        ;;
    '--validation-split'|'--validation_split')
        return
        ;;
    '--validation-seed'|'--validation_seed')
        return
        ;;
    '--validate-every-n-steps'|'--validate_every_n_steps')
        return
        ;;
    '--validate-every-n-epochs'|'--validate_every_n_epochs')
        return
        ;;
    '--max-validation-steps'|'--max_validation_steps')
        return
        ;;
    '--find-lr-steps'|'--find_lr_steps')
        return
        ;;
    esac

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    help)
        # Offer subcommand argument completions
        "_lora-train_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'help' -- "${cur}"))
        ;;
    esac
}

_lora-train_help() {
    repeating_flags=()
    non_repeating_flags=(--version)
    repeating_options=()
    non_repeating_options=()
    __lora-train_offer_flags_options -1
}

complete -o filenames -F _lora-train lora-train