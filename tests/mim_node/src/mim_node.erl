%% The MongooseIM stand-in: an OTP application started from REL_ROOT like a relx release
%% (`erl -args_file etc/vm.args -config etc/app.config -s mim_node`). It writes var/status,
%% keeps a disc mnesia schema under REL_ROOT and serves TCP listeners bound to 127.0.0.1.
-module(mim_node).
-behaviour(application).
-behaviour(supervisor).

-export([start/0]).
-export([start/2, stop/1]).
-export([init/1]).
-export([join_cluster/1]).

-include_lib("kernel/include/logger.hrl").

%% Entry point for `-s mim_node`.
start() ->
    write_status(starting),
    try
        ok = ensure_disc_schema(),
        {ok, _} = application:ensure_all_started(mnesia),
        ok = application:load(app_spec()),
        %% permanent: like a release boot script, the VM goes down with the application.
        {ok, _} = application:ensure_all_started(mim_node, permanent),
        ok = load_all_modules([kernel, stdlib, mnesia, mim_node]),
        write_status(started)
    catch
        Class:Reason:Stacktrace ->
            ?LOG_CRITICAL(#{what => mim_node_start_failed, class => Class,
                            reason => Reason, stacktrace => Stacktrace}),
            io:format(standard_error, "mim_node failed to start: ~0p~n", [Reason]),
            init:stop(1)
    end.

%% The application is loaded from this term rather than an .app file so that compiling the
%% modules is the whole build; env from app.config is merged in when it is loaded.
app_spec() ->
    {application, mim_node,
     [{description, "MongooseIM stand-in for mongooseim-agent tests"},
      {vsn, "6.2.0"},
      {modules, [mim_node, mim_listener, mim_hooks, mim_ctl, mim_log_formatter, cets_status]},
      {registered, [mim_node_sup, mim_hooks]},
      {applications, [kernel, stdlib, mnesia]},
      {mod, {mim_node, []}},
      {env, [{listeners, []}]}]}.

start(_Type, _Args) ->
    supervisor:start_link({local, mim_node_sup}, ?MODULE, []).

stop(_State) ->
    write_status(stopped).

init([]) ->
    {ok, Listeners} = application:get_env(mim_node, listeners),
    Hooks = #{id => mim_hooks, start => {mim_hooks, start_link, []}},
    Children = [#{id => {listener, Name}, start => {mim_listener, start_link, [Name, Port]}}
                || {Name, Port} <- Listeners],
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, [Hooks | Children]}}.

%% Joins the mnesia cluster of Other the way `mongooseimctl join_cluster` does: this node's
%% own schema is dropped and replaced by a disc copy of the cluster's.
join_cluster(Other) when is_atom(Other) ->
    stopped = mnesia:stop(),
    ok = mnesia:delete_schema([node()]),
    ok = mnesia:start(),
    case mnesia:change_config(extra_db_nodes, [Other]) of
        {ok, [Other]} ->
            {atomic, ok} = mnesia:change_table_copy_type(schema, node(), disc_copies),
            ok;
        {ok, []} ->
            {error, {not_connected, Other}};
        {error, _} = Error ->
            Error
    end.

%% A release boots in embedded mode with every module loaded up front. Loading on first use
%% would need a free fd, and the emfile paths (logging, the formatter) would fail just when
%% they matter.
load_all_modules(Apps) ->
    Modules = lists:append([Mods || App <- Apps, {ok, Mods} <- [application:get_key(App, modules)]]),
    code:ensure_modules_loaded(Modules).

ensure_disc_schema() ->
    case mnesia:create_schema([node()]) of
        ok -> ok;
        {error, {_, {already_exists, _}}} -> ok
    end.

write_status(Status) ->
    case application:get_env(mim_node, status_file) of
        {ok, Path} -> ok = file:write_file(Path, atom_to_list(Status));
        undefined -> ok
    end.
