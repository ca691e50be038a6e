%% What the mongooseimctl stand-in runs on the node (through erl_call -fetch_stdout): each
%% command prints what MongooseIM's CLI prints and returns the CLI's exit status.
-module(mim_ctl).

-export([status/0, mnesia_info/0, mnesia_system_info/1]).
-export([join_cluster/1, leave_cluster/0, remove_from_cluster/1]).

%% mongoose_ctl's `status` text; 0 when the application runs, 1 when only the VM does.
status() ->
    {Internal, Provided} = init:get_status(),
    Running = lists:keyfind(mim_node, 1, application:which_applications()),
    {UpMs, _} = erlang:statistics(wall_clock),
    Secs = UpMs div 1000,
    Version = case Running of
                  {mim_node, _, Vsn} -> [Vsn, " (as mongooseim)"];
                  false -> "unavailable - neither ejabberd nor mongooseim is running"
              end,
    Logs = [["        ", File, "\n"] || File <- log_files()],
    io:put_chars(
      ["MongooseIM node ", atom_to_list(node()), ":\n",
       "    operating system pid: ", os:getpid(), "\n",
       "    Erlang VM status: ", atom_to_list(Internal), " (of: starting | started | stopping)\n",
       "    boot script status: ", io_lib:format("~p", [Provided]), "\n",
       "    version: ", Version, "\n",
       io_lib:format("    uptime: ~B days ~2..0B:~2..0B:~2..0B~n",
                     [Secs div 86400, Secs rem 86400 div 3600, Secs rem 3600 div 60, Secs rem 60]),
       "    distribution protocol: inet_tcp\n",
       case Logs of
           [] -> "    logs: none - maybe enable logging to a file in app.config?\n";
           _ -> ["    logs:\n" | Logs]
       end]),
    case Running of
        false -> 1;
        _ -> 0
    end.

%% `mongooseimctl join_cluster NODE`: this node drops its own schema and takes a disc copy
%% of NODE's cluster schema, as mongoose_cluster:join/1 does.
join_cluster(Other) ->
    Node = list_to_atom(Other),
    case mim_node:join_cluster(Node) of
        ok ->
            io:format("You have successfully added the MongooseIM node ~p to the cluster "
                      "with node member ~p~n", [node(), Node]),
            0;
        Error ->
            io:format("Failed to join the cluster: ~0p~n", [Error]),
            1
    end.

%% `mongooseimctl leave_cluster`: a member deletes this node's schema copy while this node's
%% mnesia is stopped, then this node starts again with a fresh schema of its own.
leave_cluster() ->
    case mnesia:system_info(running_db_nodes) -- [node()] of
        [] ->
            io:format("The node ~p is not in a cluster~n", [node()]),
            1;
        [Member | _] ->
            stopped = mnesia:stop(),
            {atomic, ok} = rpc:call(Member, mnesia, del_table_copy, [schema, node()]),
            ok = mnesia:delete_schema([node()]),
            ok = mnesia:create_schema([node()]),
            ok = mnesia:start(),
            io:format("The node ~p has successfully left the cluster~n", [node()]),
            0
    end.

%% `mongooseimctl remove_from_cluster NODE`, run on a member: NODE's mnesia is stopped if it
%% still runs, and its schema copy deleted from the cluster.
remove_from_cluster(Other) ->
    Node = list_to_atom(Other),
    _ = rpc:call(Node, mnesia, stop, [], 5000),
    case mnesia:del_table_copy(schema, Node) of
        {atomic, ok} ->
            io:format("The node ~p has been removed from the cluster~n", [Node]),
            0;
        {aborted, Reason} ->
            io:format("Failed to remove the node ~p: ~0p~n", [Node, Reason]),
            1
    end.

%% `mongooseimctl mnesia info` (up to 6.1) prints OTP's own mnesia:info().
mnesia_info() ->
    mnesia:info(),
    0.

%% `mongooseimctl mnesia systemInfo --keys '[...]'` (6.x): the GraphQL result as pretty JSON.
%% Keys arrive as strings and only ever match atoms that already exist.
mnesia_system_info(Keys) ->
    Results = [system_info(Key) || Key <- Keys],
    Data = {[{"data", {[{"mnesia", {[{"systemInfo", [R || {ok, R} <- Results]}]}}]}}]},
    Errors = [E || {error, E} <- Results],
    Json = case Errors of
               [] -> Data;
               _ -> {[{"errors", Errors} | element(1, Data)]}
           end,
    io:put_chars([pretty(Json, ""), "\n"]),
    case Errors of
        [] -> 0;
        _ -> 1
    end.

system_info(Key) ->
    try mnesia:system_info(list_to_existing_atom(Key)) of
        Value -> {ok, {[{"key", Key}, {"result", json_value(Value)}]}}
    catch
        _:_ ->
            {error, {[{"extensions", {[{"code", "bad_key_error"}, {"key", Key}]}},
                      {"message", "Key is not valid"},
                      {"path", ["mnesia", "systemInfo"]}]}}
    end.

json_value(true) -> true;
json_value(false) -> false;
json_value(V) when is_atom(V) -> atom_to_list(V);
json_value(V) when is_integer(V) -> V;
json_value(V) when is_list(V) -> [json_value(X) || X <- V];
json_value(V) -> lists:flatten(io_lib:format("~0p", [V])).

%% jiffy's [pretty] layout: two-space indent, `"key" : value`.
pretty({[]}, _) -> "{}";
pretty({Pairs}, Indent) ->
    Inner = Indent ++ "  ",
    ["{\n", lists:join(",\n", [[Inner, string(K), " : ", pretty(V, Inner)] || {K, V} <- Pairs]),
     "\n", Indent, "}"];
pretty([], _) -> "[]";
pretty([C | _] = S, _) when is_integer(C) -> string(S);
pretty(List, Indent) when is_list(List) ->
    Inner = Indent ++ "  ",
    ["[\n", lists:join(",\n", [[Inner, pretty(V, Inner)] || V <- List]), "\n", Indent, "]"];
pretty(true, _) -> "true";
pretty(false, _) -> "false";
pretty(N, _) when is_integer(N) -> integer_to_list(N).

string(S) ->
    [$", [escape(C) || C <- S], $"].

escape($") -> "\\\"";
escape($\\) -> "\\\\";
escape(C) when C < 16#20 -> io_lib:format("\\u~4.16.0B", [C]);
escape(C) -> C.

log_files() ->
    [File || #{module := logger_disk_log_h, config := #{file := File}} <- logger:get_handler_config()].
