# Evaluates deploy/nixos/module.nix without nixpkgs, for tests/deploy/nixos_module_test.cc. A stand-in
# `lib` keeps what the module declares (mkOption returns its argument, types keep a submodule's options,
# mkIf/mkMerge pass their contents through) and a stand-in `pkgs` names generated files instead of
# building them (formats.toml's generate keeps the value it would write). The module system itself,
# option types and merging are not part of this: it shows the declared options and what the module
# makes of a configuration that sets every option to its default.
#
#   nix-instantiate --eval --strict --json nixos_module_eval.nix --arg module /path/to/module.nix
{ module }:
let
  kind = name: { _type = name; };
  types = {
    str = kind "str";
    bool = kind "bool";
    int = kind "int";
    path = kind "path";
    package = kind "package";
    ints = { positive = kind "int"; unsigned = kind "int"; };
    strMatching = _: kind "str";
    nullOr = t: t;
    listOf = t: t;
    nonEmptyListOf = t: t;
    submodule = m: { _type = "submodule"; options = m.options; };
  };
  lib = {
    inherit types;
    mkOption = attrs: attrs // { _option = true; };
    mkEnableOption = description: { _option = true; type = types.bool; default = false; inherit description; };
    mkIf = condition: value: if condition then value else { };
    mkMerge = parts: parts;
    literalExpression = text: text;
    filterAttrs = pred: set:
      builtins.listToAttrs (builtins.concatMap
        (name: if pred name set.${name} then [ { inherit name; value = set.${name}; } ] else [ ])
        (builtins.attrNames set));
    mapAttrs = builtins.mapAttrs;
    toInt = builtins.fromJSON;
    last = list: builtins.elemAt list (builtins.length list - 1);
    splitString = sep: text: builtins.filter builtins.isString (builtins.split sep text);
    optional = condition: value: if condition then [ value ] else [ ];
    optionalString = condition: text: if condition then text else "";
    escapeShellArg = text: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] text + "'";
    max = a: b: if a > b then a else b;
  };
  pkgs = {
    formats.toml = _: {
      type = kind "toml";
      generate = name: value: { outPath = "/nix/store/00000000000000000000000000000000-" + name; inherit value; };
    };
    writeShellScript = name: text: { outPath = "/nix/store/11111111111111111111111111111111-" + name; inherit text; };
    coreutils = "/nix/store/22222222222222222222222222222222-coreutils";
    util-linux = "/nix/store/33333333333333333333333333333333-util-linux";
  };

  isSubmodule = opt: (opt.type._type or "") == "submodule";
  # Per option: its default; per table: its keys (recursively). Lists of tables ([[peer]]) show their
  # keys too.
  declared = opt: if isSubmodule opt then builtins.mapAttrs (_: declared) opt.type.options else opt.default or null;
  # What the module system would give for an option nobody set.
  defaultOf = opt:
    if isSubmodule opt && (opt.default or null) == { } then builtins.mapAttrs (_: defaultOf) opt.type.options
    else opt.default or null;

  attest = evaluated.options.services.attest;
  settings = {
    services.attest = {
      enable = true;
      package = "/nix/store/44444444444444444444444444444444-attest";
      settings = defaultOf attest.settings;
      policy = { quorum = 1; operator = [ { name = "op"; builders = [ "op-1:key" ]; } ]; maintainer = [ ]; };
      policyFile = null;
      nodeKeyName = "node-1";
      openFirewall = true;
      builder = {
        enable = true;
        keyFile = attest.builder.keyFile.default;
        nodes = [ "127.0.0.1:7700" ];
        spool = attest.builder.spool.default;
        rebuild = true;
      };
    };
  };
  evaluated = import module { config = settings; inherit lib pkgs; };
  parts = evaluated.config;
  node = builtins.elemAt parts 0;
  builder = builtins.elemAt parts 1;
  attestd = node.systemd.services.attestd;
  push = builder.systemd.services.attest-push;
  rebuilder = builtins.elemAt parts 2;
  rebuild = rebuilder.systemd.services.attest-rebuild;
in
{
  options = {
    settings = declared attest.settings;
    policy = declared attest.policy;
    builder = builtins.attrNames attest.builder;
  };
  attestd = {
    inherit (attestd) serviceConfig preStart wantedBy after;
    nodeToml = (builtins.head attestd.restartTriggers).value;
    firewall = node.networking.firewall.allowedTCPPorts;
    users = builtins.attrNames node.users.users;
  };
  push = {
    inherit (push) serviceConfig wantedBy after;
    builderToml = (builtins.head push.restartTriggers).value;
    postBuildHook = builder.nix.settings.post-build-hook.outPath;
    postBuildHookText = builder.nix.settings.post-build-hook.text;
    tmpfiles = builder.systemd.tmpfiles.rules;
    users = builtins.attrNames builder.users.users;
  };
  rebuild = {
    inherit (rebuild) serviceConfig wantedBy after;
    trustedUsers = rebuilder.nix.settings.trusted-users;
  };
}
