function _factoryctl_completion --description 'ask factoryctl once per TAB for its candidates'
    set -g _factoryctl_completion_candidates (env _FACTORYCTL_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=candidates \
        _TYPER_COMPLETE_ARGS=(commandline -cp) factoryctl 2>/dev/null)
end
complete --command factoryctl --no-files --condition _factoryctl_completion \
    --arguments '(string join \n -- $_factoryctl_completion_candidates)'
