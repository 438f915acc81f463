function __lora-extract_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-extract_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __lora-extract_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-extract_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __lora-extract_parse_tokens -S
    set -l unparsed_tokens (__lora-extract_tokens -pc)
    switch $unparsed_tokens[1]
    case 'lora-extract'
        __lora-extract_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'extract'
            __lora-extract_parse_subcommand 0 'base=' 'tuned=' 'rank=' 'conv-rank=' 'dynamic=' 'dynamic_method=' 'dynamic_param=' 'fro=' 'max-rank=' 'clamp-quantile=' 'min-diff=' 'alpha=' 'skip-unchanged' 'exact' 'o/output=' 'precision=' 'modules' 'json' 'q/quiet' 'version' 'h/help'
        case 'resize'
            __lora-extract_parse_subcommand 1 'model=' 'rank=' 'conv-rank=' 'dynamic=' 'dynamic_method=' 'dynamic_param=' 'fro=' 'max-rank=' 'o/output=' 'precision=' 'modules' 'json' 'q/quiet' 'version' 'h/help'
        case 'help'
            __lora-extract_parse_subcommand -r 1 'version'
        end
    end
end

function __lora-extract_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __lora-extract_parse_subcommand -S -a positional_count
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

function __lora-extract_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __lora-extract_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__lora-extract_tokens -p)
    if test -z "$(__lora-extract_tokens -t)"
        set -l index (count (__lora-extract_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'lora-extract' -f
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract" version' -l 'version' -d 'Show the version.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_positional "lora-extract" -eq 1' -fa 'extract' -d 'Extract a LoRA: ΔW = tuned − base for every module kohya\'s LoRA targets, factored by SVD.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_positional "lora-extract" -eq 1' -fa 'resize' -d 'Reduce a LoRA\'s rank (fixed or dynamic), keeping its effect\'s scale.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_positional "lora-extract" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" base model_org' -l 'base' -l 'model_org' -d 'The original model. kohya: --model_org.' -rfa '(set -l exts \'safetensors\' \'ckpt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" model_tuned tuned' -l 'tuned' -l 'model_tuned' -d 'The fine-tuned model. kohya: --model_tuned.' -rfa '(set -l exts \'safetensors\' \'ckpt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" dim new_rank rank' -l 'rank' -l 'dim' -l 'new_rank' -d 'Rank of each module, or \'auto\' to choose it per module (with --fro or --dynamic); with a dynamic rule it is the cap (default: --max-rank when extracting, each module\'s own rank when resizing). kohya: --dim, --new_rank.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" conv-rank conv_dim new_conv_rank' -l 'conv-rank' -l 'conv_dim' -l 'new_conv_rank' -d 'Rank of 3x3 conv modules (LoCon); also turns on the resnet and conv modules when extracting. kohya: --conv_dim, --new_conv_rank.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" dynamic' -l 'dynamic' -d 'Choose ranks per module: sv_ratio=N, sv_fro=F or sv_cumulative=F; --rank then caps them.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" dynamic_method' -l 'dynamic_method' -d 'kohya\'s resize_lora.py spelling of --dynamic: the method (with --dynamic_param).' -rfka 'sv_ratio sv_fro sv_cumulative'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" dynamic_param' -l 'dynamic_param' -d 'kohya\'s --dynamic_param: the value for --dynamic_method.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" fro' -l 'fro' -d 'Shorthand for --dynamic sv_fro=F.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" max-rank' -l 'max-rank' -d 'Largest rank when --rank is \'auto\'.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" clamp-quantile clamp_quantile' -l 'clamp-quantile' -l 'clamp_quantile' -d 'Clamp factor values at this quantile. kohya: --clamp_quantile.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" min-diff min_diff' -l 'min-diff' -l 'min_diff' -d 'Leave the text encoder out unless some weight changed by more than this. kohya: --min_diff.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" alpha' -l 'alpha' -d 'alpha of every module (default: the rank, i.e. scale 1).' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" skip-unchanged' -l 'skip-unchanged' -d 'Leave out U-Net modules that did not change at all (kohya writes them as zeros).'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" exact' -l 'exact' -d 'Use LAPACK\'s exact SVD for every module.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" o output save_to' -s 'o' -l 'output' -l 'save_to' -d 'Output .safetensors file (written atomically; never an input). kohya: --save_to.' -rfa '(for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.\'safetensors\';printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" precision save_precision' -l 'precision' -l 'save_precision' -d 'Output precision. kohya: --save_precision (float = fp32).' -rfka 'fp16 bf16 fp32'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" modules' -l 'modules' -d 'List every module\'s rank, kept norm and error.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" json' -l 'json' -d 'Print the report as JSON.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" q quiet' -l 'quiet' -s 'q' -d 'No progress bar.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" version' -l 'version' -d 'Show the version.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_positional "lora-extract resize" -eq 1' -fa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" model' -l 'model' -d 'kohya\'s resize_lora.py spelling of the LoRA to resize.' -rfa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" dim new_rank rank' -l 'rank' -l 'dim' -l 'new_rank' -d 'Rank of each module, or \'auto\' to choose it per module (with --fro or --dynamic); with a dynamic rule it is the cap (default: --max-rank when extracting, each module\'s own rank when resizing). kohya: --dim, --new_rank.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" conv-rank conv_dim new_conv_rank' -l 'conv-rank' -l 'conv_dim' -l 'new_conv_rank' -d 'Rank of 3x3 conv modules (LoCon); also turns on the resnet and conv modules when extracting. kohya: --conv_dim, --new_conv_rank.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" dynamic' -l 'dynamic' -d 'Choose ranks per module: sv_ratio=N, sv_fro=F or sv_cumulative=F; --rank then caps them.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" dynamic_method' -l 'dynamic_method' -d 'kohya\'s resize_lora.py spelling of --dynamic: the method (with --dynamic_param).' -rfka 'sv_ratio sv_fro sv_cumulative'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" dynamic_param' -l 'dynamic_param' -d 'kohya\'s --dynamic_param: the value for --dynamic_method.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" fro' -l 'fro' -d 'Shorthand for --dynamic sv_fro=F.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" max-rank' -l 'max-rank' -d 'Largest rank when --rank is \'auto\'.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" o output save_to' -s 'o' -l 'output' -l 'save_to' -d 'Output .safetensors file (written atomically; never an input). kohya: --save_to.' -rfa '(for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.\'safetensors\';printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" precision save_precision' -l 'precision' -l 'save_precision' -d 'Output precision. kohya: --save_precision (float = fp32).' -rfka 'fp16 bf16 fp32'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" modules' -l 'modules' -d 'List every module\'s rank, kept norm and error.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" json' -l 'json' -d 'Print the report as JSON.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" q quiet' -l 'quiet' -s 'q' -d 'No progress bar.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" version' -l 'version' -d 'Show the version.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract help" version' -l 'version' -d 'Show the version.'
