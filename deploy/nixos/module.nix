# NixOS module for attest: `services.attest` runs a node (attestd), `services.attest.builder` makes this
# machine an attesting builder (Nix's post-build-hook queues what it builds, `attest push --watch`
# submits it). The options mirror deploy/node.example.toml, deploy/policy.example.toml and
# deploy/builder.example.toml key for key; see those files for what each key does. Usage and an example
# configuration: deploy/nixos/README.md.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types literalExpression;

  cfg = config.services.attest;
  builderCfg = cfg.builder;
  toml = pkgs.formats.toml { };

  # TOML has no null: options left null (an absent [gateway], an unset policy file) are dropped, and so
  # are empty lists of tables ([[peer]], [[maintainer]]), which attestd would read as plain arrays.
  clean = value:
    if builtins.isAttrs value then
      lib.filterAttrs (_: v: v != null && v != [ ]) (lib.mapAttrs (_: clean) value)
    else if builtins.isList value then
      map clean value
    else
      value;

  # "host:port" or "[v6]:port" -> port number.
  portOf = address: lib.toInt (lib.last (lib.splitString ":" address));

  # Sandbox shared by both services: neither needs any privilege (see deploy/systemd/*.service, which
  # carry the same settings and the reasons).
  hardening = {
    NoNewPrivileges = true;
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateUsers = true;
    PrivateIPC = true;
    PrivateMounts = true;
    ProtectHostname = true;
    ProtectClock = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectProc = "invisible";
    RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    RemoveIPC = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [ "@system-service" "~@privileged @resources" ];
    SystemCallErrorNumber = "EPERM";
    UMask = "0077";
  };

  durationType = types.strMatching "[0-9]+(ms|s|m|h)";

  nodeOptions = {
    grpc = mkOption {
      type = types.str;
      default = "127.0.0.1:7700";
      description = "gRPC listen address. Anything but loopback needs allow_non_loopback.";
    };
    http = mkOption {
      type = types.str;
      default = "127.0.0.1:7780";
      description = ''HTTP listen address (health, the log, the gateway); "" turns it off.'';
    };
    database = mkOption {
      type = types.str;
      default = "/var/lib/attest/attest.db";
      description = "The SQLite database. Must be under /var/lib/attest, the only directory the service may write.";
    };
    key = mkOption {
      type = types.str;
      default = "/var/lib/attest/node.sec";
      description = ''
        The node's Nix secret key file, readable by the attest user only. A string, not a path, so the
        secret never enters the world-readable Nix store. See nodeKeyName to create it on first start.
      '';
    };
    policy = mkOption {
      type = types.str;
      # Interpolated, so a policyFile given as a path is copied into the store (toString would keep a
      # path on the machine that evaluates the configuration).
      default = if cfg.policyFile != null then "${cfg.policyFile}" else "${policyFile}";
      defaultText = literalExpression "policyFile, or the file generated from services.attest.policy";
      description = "The federation's policy file. By default the one written from services.attest.policy.";
    };
    observe_unknown_keys = mkOption {
      type = types.bool;
      default = false;
      description = "Store (never count) attestations of keys not in the policy.";
    };
    max_batch = mkOption {
      type = types.ints.positive;
      default = 10000;
      description = "Most attestations in one Submit.";
    };
    max_status_paths = mkOption {
      type = types.ints.positive;
      default = 10000;
      description = "Most store paths in one Status request.";
    };
    max_status_answer_bytes = mkOption {
      type = types.ints.positive;
      default = 4194304;
      description = "Largest Status answer in bytes; a larger one is refused (RESOURCE_EXHAUSTED), never cut.";
    };
    max_message_bytes = mkOption {
      type = types.ints.positive;
      default = 67108864;
      description = "Largest gRPC request in bytes.";
    };
    verify_threads = mkOption {
      type = types.ints.positive;
      default = 2;
      description = "Signature verification threads (one per core).";
    };
    rpc_threads = mkOption {
      type = types.ints.positive;
      default = 8;
      description = "Handler threads for submissions, and as many for reads.";
    };
    allow_non_loopback = mkOption {
      type = types.bool;
      default = false;
      description = "Must be true to bind anything but loopback.";
    };
    http_threads = mkOption { type = types.ints.positive; default = 2; description = "HTTP event threads."; };
    http_job_threads = mkOption {
      type = types.ints.positive;
      default = 16;
      description = "Threads for HTTP work that may block.";
    };
    http_max_connections = mkOption {
      type = types.ints.positive;
      default = 1024;
      description = "Most HTTP connections at once (the service's LimitNOFILE follows it).";
    };
    http_max_connections_per_ip = mkOption {
      type = types.ints.unsigned;
      default = 128;
      description = ''
        Most HTTP connections from one client address; more are closed at once. 0 means no such limit
        (behind a reverse proxy on the same machine, every client has the proxy's address).
      '';
    };
    http_idle_timeout = mkOption {
      type = types.ints.positive;
      default = 30;
      description = "Seconds before an idle HTTP connection is closed.";
    };
    http_request_head_timeout = mkOption {
      type = types.ints.positive;
      default = 20;
      description = ''
        Seconds for a whole HTTP request to arrive after the connection opened or the previous answer
        was sent; slower connections are closed even if they keep sending (slowloris).
      '';
    };
  };

  gatewayOptions = {
    upstream = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://cache.nixos.org";
      description = ''
        The binary cache behind the gateway: http(s)://host[:port][/prefix] or file:///absolute/dir.
        Optional when operators list caches in the policy or `source` mirrors are set (relay mode);
        then it is the last source.'';
    };
    priority = mkOption {
      type = types.int;
      default = 30;
      description = "Priority in /nix-cache-info (lower is tried first).";
    };
    positive_ttl = mkOption {
      type = types.ints.unsigned;
      default = 3600;
      description = "Seconds an upstream narinfo is believed.";
    };
    negative_ttl = mkOption {
      type = types.ints.unsigned;
      default = 60;
      description = "Seconds an upstream \"no such narinfo\" is believed.";
    };
    failure_ttl = mkOption {
      type = types.ints.unsigned;
      default = 5;
      description = "Seconds an upstream failure is believed.";
    };
    cache_entries = mkOption {
      type = types.ints.positive;
      default = 50000;
      description = "Hash parts kept in memory.";
    };
    upstream_timeout = mkOption {
      type = types.ints.positive;
      default = 10;
      description = "Seconds for a narinfo fetch or a NAR's headers.";
    };
    nar_streams = mkOption {
      type = types.ints.positive;
      default = 32;
      description = "NARs relayed from an http(s) upstream at once.";
    };
    nar_cache = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Relay mode: the directory of verified NARs (default: the database path + \".nar-cache\").";
    };
    nar_cache_mib = mkOption {
      type = types.ints.positive;
      default = 10240;
      description = "Relay mode: the bound of the NAR cache in MiB (least recently used NARs are evicted).";
    };
    max_nar_mib = mkOption {
      type = types.ints.positive;
      default = 4096;
      description = "Relay mode: the largest NAR relayed, in MiB (at most nar_cache_mib); larger ones are built by clients.";
    };
    nar_fetches = mkOption {
      type = types.ints.positive;
      default = 16;
      description = "Relay mode: NAR transfers from sources at once.";
    };
    source_timeout = mkOption {
      type = types.ints.positive;
      default = 10;
      description = "Relay mode: seconds to connect to a source, and for a whole narinfo.";
    };
    nar_transfer_timeout = mkOption {
      type = types.ints.positive;
      default = 600;
      description = "Relay mode: seconds for one whole NAR file from one source.";
    };
    nar_stall_timeout = mkOption {
      type = types.ints.positive;
      default = 30;
      description = "Relay mode: seconds without a byte before a NAR transfer fails over to the next source.";
    };
  };

  peerOptions = {
    grpc = mkOption {
      type = types.str;
      example = "node-b.example.org:7700";
      description = "The peer's gRPC address.";
    };
    http = mkOption {
      type = types.str;
      example = "node-b.example.org:7780";
      description = "The peer's HTTP address.";
    };
    key = mkOption {
      type = types.str;
      example = "node-b:base64...";
      description = "The peer node's Nix public key.";
    };
  };

  settingsType = types.submodule {
    options = {
      node = mkOption {
        type = types.submodule { options = nodeOptions; };
        default = { };
        description = "The [node] table.";
      };
      gateway = mkOption {
        type = types.nullOr (types.submodule { options = gatewayOptions; });
        default = null;
        description = "The [gateway] table: the substituter gateway. null runs without one.";
      };
      log = mkOption {
        type = types.submodule {
          options.checkpoint_interval = mkOption {
            type = durationType;
            default = "1s";
            description = "How often the log is checked for growth and a checkpoint signed (10ms to 1h).";
          };
        };
        default = { };
        description = "The [log] table: the node's transparency log.";
      };
      scrub = mkOption {
        type = types.submodule {
          options.interval = mkOption {
            type = durationType;
            default = "24h";
            description = "Between two background passes over the stored data; \"0s\" turns them off.";
          };
          options.rate = mkOption {
            type = types.ints.unsigned;
            default = 20000;
            description = "Path rows plus log entries checked per second at most (0: no limit).";
          };
        };
        default = { };
        description = "The [scrub] table: re-checking the stored data in the background.";
      };
      rebuild = mkOption {
        type = types.submodule {
          options = {
            count_demand = mkOption {
              type = types.bool;
              default = true;
              description = "Count requests for paths short of CONFIRMED (false: the rebuild queue stays empty).";
            };
            demand_half_life = mkOption {
              type = durationType;
              default = "24h";
              description = "A path's demand halves in this time (1m to 8760h).";
            };
            demand_budget = mkOption {
              type = types.ints.positive;
              default = 1000;
              description = "Requests one client address may add to demand per minute.";
            };
            max_demand_paths = mkOption {
              type = types.ints.positive;
              default = 1000000;
              description = "Paths with demand kept in memory (about 150 bytes each).";
            };
            lease = mkOption {
              type = durationType;
              default = "30m";
              description = "How long a rebuilder's lease on a path lasts unless renewed.";
            };
          };
        };
        default = { };
        description = "The [rebuild] table: the rebuild queue (demand, derivations, leases).";
      };
      federation = mkOption {
        type = types.submodule {
          options = {
            poll_interval = mkOption {
              type = durationType;
              default = "500ms";
              description = "How often each peer's checkpoint is fetched.";
            };
            max_backoff = mkOption {
              type = durationType;
              default = "5s";
              description = "Cap of the wait after failed rounds.";
            };
            batch_entries = mkOption {
              type = types.ints.positive;
              default = 4096;
              description = "Most peer entries applied in one transaction.";
            };
          };
        };
        default = { };
        description = "The [federation] table: following the peers' logs.";
      };
      peer = mkOption {
        type = types.listOf (types.submodule { options = peerOptions; });
        default = [ ];
        description = "One [[peer]] table per node this node follows.";
      };
      source = mkOption {
        type = types.listOf (types.submodule {
          options = {
            url = mkOption {
              type = types.str;
              example = "https://nar-mirror.example.org";
              description = "A binary cache of this node's own holding NARs of the federation's builds (http(s):// or file:///absolute/dir).";
            };
            priority = mkOption {
              type = types.ints.unsigned;
              default = 0;
              description = "0 to 10000: lower is tried first; equal ones in list order.";
            };
          };
        });
        default = [ ];
        description = "[[source]] tables: NAR mirrors of the node's own (not operators; they vouch for nothing).";
      };
    };
  };

  policyType = types.submodule {
    options = {
      quorum = mkOption {
        type = types.ints.positive;
        description = "How many distinct operators must agree before a path is CONFIRMED.";
      };
      operator = mkOption {
        type = types.listOf (types.submodule {
          options = {
            name = mkOption { type = types.str; description = "The operator's unique name."; };
            builders = mkOption {
              type = types.nonEmptyListOf types.str;
              description = "Nix public keys of its builders (name:base64).";
            };
            caches = mkOption {
              type = types.listOf types.str;
              default = [ ];
              description = "Nix binary caches holding its builds, first preferred (http://, https:// or file:///absolute/dir).";
            };
          };
        });
        default = [ ];
        description = "[[operator]] tables: each operator counts once, however many builder keys it has.";
      };
      maintainer = mkOption {
        type = types.listOf (types.submodule {
          options.key = mkOption { type = types.str; description = "The maintainer's Nix public key."; };
        });
        default = [ ];
        description = "[[maintainer]] tables: keys that may resolve disputes.";
      };
    };
  };

  nodeConfigFile = toml.generate "attest-node.toml" (clean cfg.settings);
  policyFile = toml.generate "attest-policy.toml" (clean cfg.policy);

  builderConfigFile = toml.generate "attest-builder.toml" {
    key = builderCfg.keyFile;
    spool = builderCfg.spool;
    nodes = builderCfg.nodes;
  };

  # Nix runs this as root under nix-daemon. It drops to attest-push before running the hook, so the
  # spool records belong to the user of attest-push.service (the spool writes them with mode 0600), and
  # never fails: a failing post-build-hook stops Nix's build loop.
  postBuildHook = pkgs.writeShellScript "attest-post-build-hook" ''
    hook=${cfg.package}/bin/attest-hook
    config=${builderConfigFile}
    if [ "$(${pkgs.coreutils}/bin/id -u)" = 0 ]; then
      ${pkgs.util-linux}/bin/setpriv --reuid=attest-push --regid=attest-push --init-groups \
        --inh-caps=-all --bounding-set=-all --no-new-privs -- "$hook" --config "$config" ||
        echo "attest hook: could not run $hook as attest-push; run 'attest push --scan' later" >&2
    else
      "$hook" --config "$config" || echo "attest hook: $hook failed; run 'attest push --scan' later" >&2
    fi
    exit 0
  '';
in
{
  options.services.attest = {
    enable = mkEnableOption "the attest node (attestd)";

    package = mkOption {
      type = types.package;
      description = "The attest package, providing bin/attestd, bin/attest and bin/attest-hook.";
      example = literalExpression "pkgs.callPackage ./attest.nix { }";
    };

    settings = mkOption {
      type = settingsType;
      default = { };
      description = "The node config (node.toml), written out as TOML. Keys as in deploy/node.example.toml.";
    };

    policy = mkOption {
      type = types.nullOr policyType;
      default = null;
      description = ''
        The federation's policy, written out as TOML (keys as in deploy/policy.example.toml). Every node of
        a federation needs the same policy; its hash ignores comments and order. Set this or policyFile.
      '';
    };

    policyFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "An existing policy file, instead of policy.";
    };

    nodeKeyName = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "node-1";
      description = ''
        When set and settings.node.key does not exist, the key is generated with this name
        (`attest key generate`) before the first start. Its name is the node's name in the federation.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the gRPC and HTTP ports (they also need a non-loopback address and allow_non_loopback).";
    };

    builder = {
      enable = mkEnableOption "attesting this machine's builds: Nix's post-build-hook and `attest push --watch`";

      keyFile = mkOption {
        type = types.str;
        default = "/var/lib/attest-push/builder.sec";
        description = ''
          The builder's Nix secret key file, owned by attest-push with mode 0400 (only the pusher reads it).
          A string, so the secret stays out of the Nix store. Its public half goes into the policy.
        '';
      };

      nodes = mkOption {
        type = types.nonEmptyListOf types.str;
        example = [ "node-a.example.org:7700" "node-b.example.org:7700" ];
        description = "Node gRPC addresses. A record leaves the spool once every one acknowledged it.";
      };

      spool = mkOption {
        type = types.str;
        default = "/var/spool/attest";
        description = "Where the hook leaves a record per built output for the pusher.";
      };

      rebuild = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Also build what the federation is missing: `attest rebuild --watch` takes wanted paths this
          builder's operator has not attested from the first node's queue, checks and imports their
          derivations, builds them and pushes the results (docs/rebuilds.md). Importing the fetched .drv
          files makes attest-push a trusted user of nix-daemon.
        '';
      };
    };
  };

  config = mkMerge [
    (mkIf cfg.enable {
      assertions = [
        {
          assertion = (cfg.policy == null) != (cfg.policyFile == null);
          message = "services.attest: set exactly one of policy and policyFile.";
        }
      ];

      users.users.attest = {
        isSystemUser = true;
        group = "attest";
        home = "/var/lib/attest";
        description = "attest node";
      };
      users.groups.attest = { };

      networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall
        ([ (portOf cfg.settings.node.grpc) ]
          ++ lib.optional (cfg.settings.node.http != "") (portOf cfg.settings.node.http));

      systemd.services.attestd = {
        description = "attest node: counts independent rebuilds of Nix store paths";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        restartTriggers = [ nodeConfigFile ];
        preStart = lib.optionalString (cfg.nodeKeyName != null) ''
          if [ ! -e ${lib.escapeShellArg cfg.settings.node.key} ]; then
            ${cfg.package}/bin/attest key generate --name ${lib.escapeShellArg cfg.nodeKeyName} \
              --out ${lib.escapeShellArg cfg.settings.node.key}
          fi
        '';
        serviceConfig = hardening // {
          Type = "exec";
          ExecStart = "${cfg.package}/bin/attestd --config ${nodeConfigFile}";
          User = "attest";
          Group = "attest";
          StateDirectory = "attest";
          StateDirectoryMode = "0700";
          WorkingDirectory = "/var/lib/attest";
          Restart = "on-failure";
          RestartSec = "2s";
          # attestd drains for at most 10 s after SIGTERM.
          TimeoutStopSec = "15s";
          LimitNOFILE = lib.max 8192 (cfg.settings.node.http_max_connections + 1024);
        };
      };
    })

    (mkIf builderCfg.enable {
      users.users.attest-push = {
        isSystemUser = true;
        group = "attest-push";
        home = "/var/lib/attest-push";
        description = "attest builder push";
      };
      users.groups.attest-push = { };

      systemd.tmpfiles.rules = [
        "d ${builderCfg.spool} 0700 attest-push attest-push -"
        "d /var/lib/attest-push 0700 attest-push attest-push -"
      ];

      nix.settings.post-build-hook = postBuildHook;

      systemd.services.attest-push = {
        description = "attest push: submits this builder's signed build results to the attest nodes";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        restartTriggers = [ builderConfigFile ];
        serviceConfig = hardening // {
          Type = "exec";
          ExecStart = "${cfg.package}/bin/attest push --watch --config ${builderConfigFile}";
          User = "attest-push";
          Group = "attest-push";
          ReadWritePaths = [ builderCfg.spool ];
          WorkingDirectory = builderCfg.spool;
          Restart = "on-failure";
          RestartSec = "5s";
          # A submission in flight has a 10 s deadline.
          TimeoutStopSec = "20s";
          LimitNOFILE = 1024;
        };
      };
    })

    (mkIf (builderCfg.enable && builderCfg.rebuild) {
      # Importing .drv files through nix-daemon needs a trusted user; attest checks each one first.
      nix.settings.trusted-users = [ "attest-push" ];

      systemd.services.attest-rebuild = {
        description = "attest rebuild: builds the paths the attest federation is missing";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" "nix-daemon.socket" ];
        restartTriggers = [ builderConfigFile ];
        # nix-store, from the system's Nix.
        path = [ "/run/current-system/sw" ];
        serviceConfig = hardening // {
          Type = "exec";
          ExecStart = "${cfg.package}/bin/attest rebuild --watch --config ${builderConfigFile}";
          User = "attest-push";
          Group = "attest-push";
          ReadWritePaths = [ builderCfg.spool ];
          WorkingDirectory = builderCfg.spool;
          Environment = "NIX_REMOTE=daemon";
          Restart = "on-failure";
          RestartSec = "30s";
          # A build in progress is left to nix-daemon; its lease expires on the node.
          TimeoutStopSec = "30s";
          LimitNOFILE = 1024;
        };
      };
    })
  ];
}
