function __lora-train_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-train_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __lora-train_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-train_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __lora-train_parse_tokens -S
    set -l unparsed_tokens (__lora-train_tokens -pc)
    switch $unparsed_tokens[1]
    case 'lora-train'
        __lora-train_parse_subcommand 0 'config-file=' 'm/model=' 'vae=' 'tokenizer=' 'train-data-dir=' 'dataset-config=' 'reg-data-dir=' 'caption-extension=' 'resolution=' 'enable-bucket' 'min-bucket-reso=' 'max-bucket-reso=' 'bucket-reso-steps=' 'bucket-no-upscale' 'train-batch-size=' 'shuffle-caption' 'keep-tokens=' 'keep-tokens-separator=' 'caption-separator=' 'caption-prefix=' 'caption-suffix=' 'caption-dropout-rate=' 'caption-dropout-every-n-epochs=' 'caption-tag-dropout-rate=' 'secondary-separator=' 'token-warmup-min=' 'token-warmup-step=' 'enable-wildcard' 'flip-aug' 'random-crop' 'alpha-mask' 'masked-loss' 'color-aug' 'resize-interpolation=' 'prior-loss-weight=' 'max-token-length=' 'weighted-captions' 'clip-skip=' 'cache-latents' 'cache-latents-to-disk' 'network-module=' 'network-dim=' 'network-alpha=' 'network-args=+' 'network-dropout=' 'network-train-unet-only' 'network-train-text-encoder-only' 'scale-weight-norms=' 'network-weights=' 'base-weights=+' 'base-weights-multiplier=+' 'dim-from-weights' 'optimizer-type=' 'optimizer-args=+' 'learning-rate=' 'unet-lr=' 'text-encoder-lr=' 'lr-scheduler=' 'lr-scheduler-timescale=' 'lr-scheduler-min-lr-ratio=' 'lr-decay-steps=' 'lr-scheduler-args=+' 'lr-warmup-steps=' 'lr-scheduler-num-cycles=' 'lr-scheduler-power=' 'max-grad-norm=' 'gradient-accumulation-steps=' 'noise-offset=' 'noise-offset-random-strength' 'adaptive-noise-scale=' 'multires-noise-iterations=' 'multires-noise-discount=' 'ip-noise-gamma=' 'ip-noise-gamma-random-strength' 'loss-type=' 'huber-schedule=' 'huber-c=' 'huber-scale=' 'min-snr-gamma=' 'debiased-estimation-loss' 'scale-v-pred-loss-like-noise-pred' 'v-pred-like-loss=' 'zero-terminal-snr' 'min-timestep=' 'max-timestep=' 'sample-prompts=' 'sample-every-n-epochs=' 'sample-every-n-steps=' 'sample-at-first' 'sample-sampler=' 'output-dir=' 'output-name=' 'max-train-epochs=' 'max-train-steps=' 'save-every-n-epochs=' 'save-n-epoch-ratio=' 'save-every-n-steps=' 'save-precision=' 'save-last-n-epochs=' 'save-last-n-steps=' 'save-last-n-epochs-state=' 'save-last-n-steps-state=' 'save-state-on-train-end' 'save-state' 'resume=' 'initial-epoch=' 'initial-step=' 'skip-until-initial-step' 'save-model-as=' 'seed=' 'mixed-precision=' 'no-metadata' 'training-comment=' 'metadata-title=' 'metadata-author=' 'metadata-description=' 'metadata-license=' 'metadata-tags=' 'metadata-usage-hint=' 'metadata-trigger-phrase=' 'logging-dir=' 'log-prefix=' 'log-tracker-name=' 'log-with=' 'validation-split=' 'validation-seed=' 'validate-every-n-steps=' 'validate-every-n-epochs=' 'max-validation-steps=' 'gradient-checkpointing' 'find-lr' 'find-lr-steps=' 'dry-run' 'q/quiet' 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'help'
            __lora-train_parse_subcommand -r 1 'version'
        end
    end
end

function __lora-train_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __lora-train_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __lora-train_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __lora-train_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__lora-train_tokens -p)
    if test -z "$(__lora-train_tokens -t)"
        set -l index (count (__lora-train_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'lora-train' -f
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" config config-file config_file' -l 'config-file' -l 'config_file' -l 'config' -d 'kohya\'s training-arguments TOML (sections are flattened); the command line overrides it.' -rfa '(for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.\'toml\';printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" m model pretrained_model_name_or_path' -s 'm' -l 'model' -l 'pretrained_model_name_or_path' -d 'The SD1.x/SD2.x checkpoint to train on (.safetensors or .ckpt). kohya: --pretrained_model_name_or_path.' -rfa '(set -l exts \'safetensors\' \'ckpt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" vae' -l 'vae' -d 'A separate VAE (e.g. vae-ft-mse-840000) that encodes the latents and decodes the samples instead of the checkpoint\'s. kohya: --vae.' -rfa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" tokenizer' -l 'tokenizer' -d 'CLIP tokenizer: a folder with vocab.json and merges.txt, or bpe_simple_vocab_16e6.txt.gz.' -rF
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" train-data-dir train_data_dir' -l 'train-data-dir' -l 'train_data_dir' -d 'The parent of the <repeats>_<class tokens> image folders (e.g. dataset/ holding 10_mychar/). kohya: --train_data_dir.' -rfa '(__lora-train_complete_directories)'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" dataset-config dataset_config' -l 'dataset-config' -l 'dataset_config' -d 'kohya\'s dataset TOML ([general], [[datasets]], [[datasets.subsets]]); replaces --train-data-dir.' -rfa '(for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.\'toml\';printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" reg-data-dir reg_data_dir' -l 'reg-data-dir' -l 'reg_data_dir' -d 'The parent of regularization folders, balanced to as many samples as the training images. kohya: --reg_data_dir.' -rfa '(__lora-train_complete_directories)'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" caption-extension caption_extension caption_extention' -l 'caption-extension' -l 'caption_extension' -l 'caption_extention' -d 'Caption file extension (kohya\'s default .caption; a warning names .txt files it finds instead).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" resolution' -l 'resolution' -d 'Training resolution as an area: 512, or width,height (kohya: "512,768").' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" enable-bucket enable_bucket' -l 'enable-bucket' -l 'enable_bucket' -d 'Aspect-ratio buckets (kohya\'s predefined list of area ≤ resolution).'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" min-bucket-reso min_bucket_reso' -l 'min-bucket-reso' -l 'min_bucket_reso' -d 'Smallest bucket side.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" max-bucket-reso max_bucket_reso' -l 'max-bucket-reso' -l 'max_bucket_reso' -d 'Largest bucket side.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" bucket-reso-steps bucket_reso_steps' -l 'bucket-reso-steps' -l 'bucket_reso_steps' -d 'Bucket side step (a multiple of 8; 64 for SD1/SD2).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" bucket-no-upscale bucket_no_upscale' -l 'bucket-no-upscale' -l 'bucket_no_upscale' -d 'Buckets from each image\'s own size, never enlarging.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" train-batch-size train_batch_size' -l 'train-batch-size' -l 'train_batch_size' -d 'Images per batch (a batch never mixes buckets).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" shuffle-caption shuffle_caption' -l 'shuffle-caption' -l 'shuffle_caption' -d 'Shuffle the comma-separated tags of each caption (after --keep-tokens).'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" keep-tokens keep_tokens' -l 'keep-tokens' -l 'keep_tokens' -d 'Tags (not CLIP tokens) kept in front when shuffling.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" keep-tokens-separator keep_tokens_separator' -l 'keep-tokens-separator' -l 'keep_tokens_separator' -d 'Text before this separator stays in front.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" caption-separator caption_separator' -l 'caption-separator' -l 'caption_separator' -d 'Tag separator.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" caption-prefix caption_prefix' -l 'caption-prefix' -l 'caption_prefix' -d 'Text put before every caption.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" caption-suffix caption_suffix' -l 'caption-suffix' -l 'caption_suffix' -d 'Text put after every caption.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" caption-dropout-rate caption_dropout_rate' -l 'caption-dropout-rate' -l 'caption_dropout_rate' -d 'Probability of training a sample with an empty caption.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" caption-dropout-every-n-epochs caption_dropout_every_n_epochs' -l 'caption-dropout-every-n-epochs' -l 'caption_dropout_every_n_epochs' -d 'Empty captions for every n-th epoch.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" caption-tag-dropout-rate caption_tag_dropout_rate' -l 'caption-tag-dropout-rate' -l 'caption_tag_dropout_rate' -d 'Probability of dropping each shuffled tag.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" secondary-separator secondary_separator' -l 'secondary-separator' -l 'secondary_separator' -d 'Tags joined by this shuffle as one, then become separate tags (e.g. ;;;).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" token-warmup-min token_warmup_min' -l 'token-warmup-min' -l 'token_warmup_min' -d 'Tags (after the kept ones) used at the first step of the warm-up.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" token-warmup-step token_warmup_step' -l 'token-warmup-step' -l 'token_warmup_step' -d 'Steps over which the tags used grow to all of them (below 1: a fraction of the run); 0: off.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" enable-wildcard enable_wildcard' -l 'enable-wildcard' -l 'enable_wildcard' -d 'Captions with several lines give a random line at each step, and {a|b|c} a random choice ({{ and }} are literal braces).'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" flip-aug flip_aug' -l 'flip-aug' -l 'flip_aug' -d 'Mirror images at random (both latents are cached).'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" random-crop random_crop' -l 'random-crop' -l 'random_crop' -d 'Crop each image at a random place within its resized size, anew at every step (kohya: its latents are encoded at every step, not cached).'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" alpha-mask alpha_mask' -l 'alpha-mask' -l 'alpha_mask' -d 'Weight the loss by each image\'s alpha channel (transparent parts train less; images without alpha count as opaque), as kohya.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" masked-loss masked_loss' -l 'masked-loss' -l 'masked_loss' -d 'kohya\'s flag for masked loss: with alpha masks the loss is masked anyway; without them it does nothing (conditioning images are not supported).'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" color-aug color_aug' -l 'color-aug' -l 'color_aug' -d 'kohya\'s colour augmentation at every step: a third of the samples get a hue shift (±8 of 180) or a gamma (0.95–1.05 on 0–255 values); not cached either.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" resize-interpolation resize_interpolation' -l 'resize-interpolation' -l 'resize_interpolation' -d 'How images are resized to their bucket: lanczos, nearest, bilinear (linear), bicubic (cubic) or area, as kohya\'s --resize_interpolation (PIL for lanczos, OpenCV for the others; a dataset config may also say box). Default: area when shrinking, lanczos when enlarging.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" prior-loss-weight prior_loss_weight' -l 'prior-loss-weight' -l 'prior_loss_weight' -d 'Loss weight of regularization images.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" max-token-length max_token_length' -l 'max-token-length' -l 'max_token_length' -d 'Caption tokens: 75 (default), 150 or 225.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" weighted-captions weighted_captions' -l 'weighted-captions' -l 'weighted_captions' -d 'Read (text), [text] and (text:1.3) in captions as weights on the text encoder\'s output, as kohya\'s --weighted_captions (keep commas out of the brackets if captions are shuffled).'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" clip-skip clip_skip' -l 'clip-skip' -l 'clip_skip' -d 'Text-encoder layer from the end (2 for most anime SD1 models).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" cache-latents cache_latents' -l 'cache-latents' -l 'cache_latents' -d 'Accepted for kohya command lines: latents are cached in memory anyway, except those of --random-crop/--color-aug images (kohya refuses the two together).'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" cache-latents-to-disk cache_latents_to_disk' -l 'cache-latents-to-disk' -l 'cache_latents_to_disk' -d 'Keep the latents in kohya\'s .npz files beside the images; later runs (and kohya) reuse them, an edited image or another VAE re-encodes.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" network-module network_module' -l 'network-module' -l 'network_module' -d 'Only networks.lora (LoRA, and LoCon with conv_dim).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" network-dim network_dim' -l 'network-dim' -l 'network_dim' -d 'Rank of the attention modules (kohya\'s default 4).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" network-alpha network_alpha' -l 'network-alpha' -l 'network_alpha' -d 'Alpha: the modules are scaled by alpha/dim (kohya\'s default 1).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train"' -l 'network-args' -l 'network_args' -d 'key=value settings: conv_dim=n conv_alpha=a (LoCon: the ResBlock convolutions too), rank_dropout=p, module_dropout=p.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" network-dropout network_dropout' -l 'network-dropout' -l 'network_dropout' -d 'Neuron dropout on the modules\' hidden values (0.1 is common).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" network-train-unet-only network_train_unet_only' -l 'network-train-unet-only' -l 'network_train_unet_only' -d 'Train only the U-Net\'s modules (the text encoder\'s are not created).'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" network-train-text-encoder-only network_train_text_encoder_only' -l 'network-train-text-encoder-only' -l 'network_train_text_encoder_only' -d 'Train only the text encoder\'s modules.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" scale-weight-norms scale_weight_norms' -l 'scale-weight-norms' -l 'scale_weight_norms' -d 'Max-norm regularisation: scale modules whose ΔW norm exceeds this (1 is common).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" network-weights network_weights' -l 'network-weights' -l 'network_weights' -d 'Start from this LoRA\'s weights (same modules and dim; a fresh optimizer, as kohya).' -rfa '(for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.\'safetensors\';printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train"' -l 'base-weights' -l 'base_weights' -d 'LoRAs merged into the model before training, as lora-merge bakes them (kohya\'s: the new LoRA learns on top of them).' -rfa '(for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.\'safetensors\';printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train"' -l 'base-weights-multiplier' -l 'base_weights_multiplier' -d 'One ratio per --base-weights file (default 1).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" dim-from-weights dim_from_weights' -l 'dim-from-weights' -l 'dim_from_weights' -d 'Take the modules, ranks and alphas from --network-weights instead of --network-dim/--network-alpha (kohya\'s).'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" optimizer-type optimizer_type' -l 'optimizer-type' -l 'optimizer_type' -d 'AdamW, AdamW8bit (trained as AdamW), Lion, SGDNesterov, Prodigy, DAdaptAdam, DAdaptLion or Adafactor.' -rfka 'AdamW AdamW8bit Lion SGDNesterov Prodigy DAdaptAdam Adafactor DAdaptLion'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train"' -l 'optimizer-args' -l 'optimizer_args' -d 'key=value as kohya: weight_decay=0.01 betas=0.9,0.999 eps=1e-8; Prodigy/DAdaptAdam: decouple=True use_bias_correction=True safeguard_warmup=True d_coef=2 d0=1e-6 growth_rate=…; SGDNesterov: momentum=0.9; DAdaptLion: betas, weight_decay, d0.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" learning-rate learning_rate lr' -l 'learning-rate' -l 'learning_rate' -l 'lr' -d 'Base learning rate (kohya\'s default 2e-6).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" unet-lr unet_lr' -l 'unet-lr' -l 'unet_lr' -d 'U-Net modules\' rate (default: --learning-rate).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" text-encoder-lr text_encoder_lr' -l 'text-encoder-lr' -l 'text_encoder_lr' -d 'Text-encoder modules\' rate (0: the text encoder is not trained).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" lr-scheduler lr_scheduler' -l 'lr-scheduler' -l 'lr_scheduler' -d 'constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial, inverse_sqrt, cosine_with_min_lr or warmup_stable_decay.' -rfka 'constant constant_with_warmup linear cosine cosine_with_restarts polynomial inverse_sqrt cosine_with_min_lr warmup_stable_decay'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" lr-scheduler-timescale lr_scheduler_timescale' -l 'lr-scheduler-timescale' -l 'lr_scheduler_timescale' -d 'inverse_sqrt\'s timescale (default: the warmup steps).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" lr-scheduler-min-lr-ratio lr_scheduler_min_lr_ratio' -l 'lr-scheduler-min-lr-ratio' -l 'lr_scheduler_min_lr_ratio' -d 'The floor of cosine_with_min_lr (needed) and warmup_stable_decay, as a share of the rate.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" lr-decay-steps lr_decay_steps' -l 'lr-decay-steps' -l 'lr_decay_steps' -d 'warmup_stable_decay\'s decay steps, or a share of all steps when below 1.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train"' -l 'lr-scheduler-args' -l 'lr_scheduler_args' -d 'warmup_stable_decay\'s warmup_type=… and decay_type=… (linear, cosine, 1-sqrt).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" lr-warmup-steps lr_warmup_steps' -l 'lr-warmup-steps' -l 'lr_warmup_steps' -d 'Warmup steps, or a fraction of all steps when below 1.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" lr-scheduler-num-cycles lr_scheduler_num_cycles' -l 'lr-scheduler-num-cycles' -l 'lr_scheduler_num_cycles' -d 'Restarts of cosine_with_restarts.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" lr-scheduler-power lr_scheduler_power' -l 'lr-scheduler-power' -l 'lr_scheduler_power' -d 'Power of the polynomial schedule.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" max-grad-norm max_grad_norm' -l 'max-grad-norm' -l 'max_grad_norm' -d 'Clip the gradient\'s L2 norm to this (0: no clipping).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" gradient-accumulation-steps gradient_accumulation_steps' -l 'gradient-accumulation-steps' -l 'gradient_accumulation_steps' -d 'Batches per optimizer step.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" noise-offset noise_offset' -l 'noise-offset' -l 'noise_offset' -d 'Noise offset (0.1 is common).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" noise-offset-random-strength noise_offset_random_strength' -l 'noise-offset-random-strength' -l 'noise_offset_random_strength' -d 'Scale the noise offset by U(0, 1) each step.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" adaptive-noise-scale adaptive_noise_scale' -l 'adaptive-noise-scale' -l 'adaptive_noise_scale' -d 'Add this times |mean latent| to the noise offset.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" multires-noise-iterations multires_noise_iterations' -l 'multires-noise-iterations' -l 'multires_noise_iterations' -d 'Pyramid (multi-resolution) noise levels (6–10).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" multires-noise-discount multires_noise_discount' -l 'multires-noise-discount' -l 'multires_noise_discount' -d 'Weight decay per pyramid level (kohya\'s default 0.3).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" ip-noise-gamma ip_noise_gamma' -l 'ip-noise-gamma' -l 'ip_noise_gamma' -d 'Input perturbation noise (about 0.1).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" ip-noise-gamma-random-strength ip_noise_gamma_random_strength' -l 'ip-noise-gamma-random-strength' -l 'ip_noise_gamma_random_strength' -d 'Scale the input perturbation by U(0, 1) each step.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" loss-type loss_type' -l 'loss-type' -l 'loss_type' -d 'l2 (default), l1, huber or smooth_l1.' -rfka 'l2 l1 huber smooth_l1'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" huber-schedule huber_schedule' -l 'huber-schedule' -l 'huber_schedule' -d 'snr (default), exponential or constant.' -rfka 'snr exponential constant'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" huber-c huber_c' -l 'huber-c' -l 'huber_c' -d 'Huber threshold (default 0.1).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" huber-scale huber_scale' -l 'huber-scale' -l 'huber_scale' -d 'Huber threshold scale (default 1).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" min-snr-gamma min_snr_gamma' -l 'min-snr-gamma' -l 'min_snr_gamma' -d 'Min-SNR loss weighting (5 is common).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" debiased-estimation-loss debiased_estimation_loss' -l 'debiased-estimation-loss' -l 'debiased_estimation_loss' -d 'Debiased estimation loss weighting.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" scale-v-pred-loss-like-noise-pred scale_v_pred_loss_like_noise_pred' -l 'scale-v-pred-loss-like-noise-pred' -l 'scale_v_pred_loss_like_noise_pred' -d 'Scale v-prediction losses like noise prediction.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" v-pred-like-loss v_pred_like_loss' -l 'v-pred-like-loss' -l 'v_pred_like_loss' -d 'Add a v-prediction-like loss of this weight.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" zero-terminal-snr zero_terminal_snr' -l 'zero-terminal-snr' -l 'zero_terminal_snr' -d 'Rescale the noise schedule so the last timestep is pure noise (kohya\'s; meant for v-prediction).'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" min-timestep min_timestep' -l 'min-timestep' -l 'min_timestep' -d 'Smallest training timestep.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" max-timestep max_timestep' -l 'max-timestep' -l 'max_timestep' -d 'Training timesteps are below this.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" sample-prompts sample_prompts' -l 'sample-prompts' -l 'sample_prompts' -d 'kohya prompt file: .txt (a prompt per line with --n negative --w --h --d seed --l cfg --s steps --ss sampler), .json or .toml.' -rfa '(set -l exts \'txt\' \'json\' \'toml\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" sample-every-n-epochs sample_every_n_epochs' -l 'sample-every-n-epochs' -l 'sample_every_n_epochs' -d 'Render the samples every n epochs.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" sample-every-n-steps sample_every_n_steps' -l 'sample-every-n-steps' -l 'sample_every_n_steps' -d 'Render the samples every n steps (ignored with --sample-every-n-epochs, as in kohya).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" sample-at-first sample_at_first' -l 'sample-at-first' -l 'sample_at_first' -d 'Also render the samples before the first step.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" sample-sampler sample_sampler' -l 'sample-sampler' -l 'sample_sampler' -d 'Sampler of the samples: ddim, euler, euler_a, k_euler, k_euler_a, dpmsolver, dpmsolver++, lms, k_lms, heun, dpm_2, k_dpm_2, dpm_2_a, k_dpm_2_a (kohya\'s default ddim).' -rfka 'ddim euler euler_a k_euler k_euler_a dpmsolver dpmsolver++ lms k_lms heun dpm_2 k_dpm_2 dpm_2_a k_dpm_2_a'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" output-dir output_dir' -l 'output-dir' -l 'output_dir' -d 'Folder for the LoRA files and the log.' -rfa '(__lora-train_complete_directories)'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" output-name output_name' -l 'output-name' -l 'output_name' -d 'File name without extension (kohya\'s default: last).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" max-train-epochs max_train_epochs' -l 'max-train-epochs' -l 'max_train_epochs' -d 'Epochs to train (overrides --max-train-steps).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" max-train-steps max_train_steps' -l 'max-train-steps' -l 'max_train_steps' -d 'Optimizer steps to train (kohya\'s default 1600).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" save-every-n-epochs save_every_n_epochs' -l 'save-every-n-epochs' -l 'save_every_n_epochs' -d 'Also save NAME-<epoch>.safetensors every n epochs.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" save-n-epoch-ratio save_n_epoch_ratio' -l 'save-n-epoch-ratio' -l 'save_n_epoch_ratio' -d 'Save about n epoch files in all: every floor(epochs / n) epochs (kohya\'s; overrides --save-every-n-epochs).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" save-every-n-steps save_every_n_steps' -l 'save-every-n-steps' -l 'save_every_n_steps' -d 'Also save NAME-step<step>.safetensors every n steps.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" save-precision save_precision' -l 'save-precision' -l 'save_precision' -d 'dtype of the saved tensors (kohya\'s default: fp32).' -rfka 'fp16 bf16 fp32'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" save-last-n-epochs save_last_n_epochs' -l 'save-last-n-epochs' -l 'save_last_n_epochs' -d 'Keep only the newest n epoch files.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" save-last-n-steps save_last_n_steps' -l 'save-last-n-steps' -l 'save_last_n_steps' -d 'Remove step files older than n steps.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" save-last-n-epochs-state save_last_n_epochs_state' -l 'save-last-n-epochs-state' -l 'save_last_n_epochs_state' -d 'Keep only the newest n epoch state folders (default: --save-last-n-epochs).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" save-last-n-steps-state save_last_n_steps_state' -l 'save-last-n-steps-state' -l 'save_last_n_steps_state' -d 'Remove step state folders older than n steps (default: --save-last-n-steps).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" save-state-on-train-end save_state_on_train_end' -l 'save-state-on-train-end' -l 'save_state_on_train_end' -d 'Save a resumable state folder at the end only.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" save-state save_state' -l 'save-state' -l 'save_state' -d 'Also save a resumable state folder (NAME-000002-state …) with every file, and at the end.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" resume' -l 'resume' -d 'Continue from a state folder written by --save-state (or by Ctrl-C): the same settings give the same file as an uninterrupted run.' -rfa '(__lora-train_complete_directories)'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" initial-epoch initial_epoch' -l 'initial-epoch' -l 'initial_epoch' -d 'Start at this epoch (1 = the first) without a state, as kohya\'s --initial_epoch: e.g. after --network-weights NAME-000004.safetensors, --initial-epoch 5 trains epochs 5 on and names their files so. The learning-rate schedule starts from its beginning.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" initial-step initial_step' -l 'initial-step' -l 'initial_step' -d 'Start at the epoch of this optimizer step (0 = the first; overrides --initial-epoch), as kohya\'s --initial_step.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" skip-until-initial-step skip_until_initial_step' -l 'skip-until-initial-step' -l 'skip_until_initial_step' -d 'With --initial-step/--initial-epoch: start at that very step (its epoch\'s earlier batches skipped) and count steps from it, as kohya\'s --skip_until_initial_step.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" save-model-as save_model_as' -l 'save-model-as' -l 'save_model_as' -d 'Only safetensors.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" seed' -l 'seed' -d 'Seed of everything random in the run (same seed, same file).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" mixed-precision mixed_precision' -l 'mixed-precision' -l 'mixed_precision' -d 'no (fp32) or bf16: the training passes\' GEMMs take bf16 operands with fp32 sums, as torch\'s autocast; the weights stay fp32. On a CPU without bf16 matrix units (AMX, AVX512-BF16), fp32 with a note.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" no-metadata no_metadata' -l 'no-metadata' -l 'no_metadata' -d 'Write only the metadata a loader needs (network dim, alpha, module, base model) and the ModelSpec card, as kohya\'s --no_metadata: no dataset, tags or settings.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" training-comment training_comment' -l 'training-comment' -l 'training_comment' -d 'Stored as ss_training_comment.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" metadata-title metadata_title' -l 'metadata-title' -l 'metadata_title' -d 'modelspec.title (default: the output name).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" metadata-author metadata_author' -l 'metadata-author' -l 'metadata_author' -d 'modelspec.author.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" metadata-description metadata_description' -l 'metadata-description' -l 'metadata_description' -d 'modelspec.description.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" metadata-license metadata_license' -l 'metadata-license' -l 'metadata_license' -d 'modelspec.license.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" metadata-tags metadata_tags' -l 'metadata-tags' -l 'metadata_tags' -d 'modelspec.tags, comma-separated.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" metadata-usage-hint metadata_usage_hint' -l 'metadata-usage-hint' -l 'metadata_usage_hint' -d 'modelspec.usage_hint.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" metadata-trigger-phrase metadata_trigger_phrase' -l 'metadata-trigger-phrase' -l 'metadata_trigger_phrase' -d 'modelspec.trigger_phrase.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" logging-dir logging_dir' -l 'logging-dir' -l 'logging_dir' -d 'Also write a TensorBoard log (kohya\'s tags: loss/current, loss/average, lr/unet, …) under this folder, in <log-prefix><YYYYmmddHHMMSS>/network_train/.' -rfa '(__lora-train_complete_directories)'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" log-prefix log_prefix' -l 'log-prefix' -l 'log_prefix' -d 'Put this in front of the TensorBoard run folder\'s name.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" log-tracker-name log_tracker_name' -l 'log-tracker-name' -l 'log_tracker_name' -d 'The TensorBoard run\'s subfolder (kohya\'s default: network_train).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" log-with log_with' -l 'log-with' -l 'log_with' -d 'tensorboard (the default with --logging-dir); wandb is not supported.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" validation-split validation_split' -l 'validation-split' -l 'validation_split' -d 'Hold out this share of each training folder\'s images (kohya\'s split: shuffled by the validation seed) and report their loss at the four timesteps 200…800, every epoch.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" validation-seed validation_seed' -l 'validation-seed' -l 'validation_seed' -d 'Seed of the split and of the validation\'s noise (default: --seed).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" validate-every-n-steps validate_every_n_steps' -l 'validate-every-n-steps' -l 'validate_every_n_steps' -d 'Also validate after every n optimizer steps.' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" validate-every-n-epochs validate_every_n_epochs' -l 'validate-every-n-epochs' -l 'validate_every_n_epochs' -d 'Validate at the end of every n-th epoch only (default: every epoch).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" max-validation-steps max_validation_steps' -l 'max-validation-steps' -l 'max_validation_steps' -d 'At most n validation batches per validation (default: all).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" gradient-checkpointing gradient_checkpointing' -l 'gradient-checkpointing' -l 'gradient_checkpointing' -d 'Recompute each U-Net block\'s activations in the backward instead of keeping them: less memory, about one more forward per step.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" find-lr find_lr' -l 'find-lr' -l 'find_lr' -d 'Run a short Prodigy probe on this data and network and print the AdamW learning rates it suggests (U-Net, text encoder), then stop.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" find-lr-steps find_lr_steps' -l 'find-lr-steps' -l 'find_lr_steps' -d 'Steps of the --find-lr probe (default: one epoch, at most 300).' -rfka ''
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" dry-run dry_run' -l 'dry-run' -l 'dry_run' -d 'Print the plan (images, buckets, steps) and stop.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" q quiet' -l 'quiet' -s 'q' -d 'No progress bar.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" version' -l 'version' -d 'Show the version.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_positional "lora-train" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'lora-train' -n '__lora-train_should_offer_completions_for_flags_or_options "lora-train help" version' -l 'version' -d 'Show the version.'
