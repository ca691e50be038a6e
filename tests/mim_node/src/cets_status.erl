%% Stand-in for the `cets_status` module of the CETS library MongooseIM 6 uses: the agent
%% calls cets_status:status(mongoose_cets_discovery) over distribution, as MongooseIM's own
%% `cets systemInfo` does. A stand-in node runs "CETS" only when its app env says so
%% ({mim_node, [{cets, true}]}); otherwise the call fails as it does on a MongooseIM whose
%% discovery process is not running (noproc).
-module(cets_status).

-export([status/1]).

status(mongoose_cets_discovery = Disco) ->
    case application:get_env(mim_node, cets, false) of
        true ->
            Nodes = lists:usort([node() | nodes()]),
            #{available_nodes => Nodes,
              unavailable_nodes => [],
              joined_nodes => Nodes,
              discovered_nodes => Nodes,
              discovery_works => true,
              remote_nodes_without_disco => [],
              remote_nodes_with_unknown_tables => [],
              remote_unknown_tables => [],
              remote_nodes_with_missing_tables => [],
              remote_missing_tables => [],
              conflict_nodes => [],
              conflict_tables => []};
        false ->
            exit({noproc, {gen_server, call, [Disco, get_info]}})
    end.
