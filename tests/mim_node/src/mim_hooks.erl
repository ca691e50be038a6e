%% Test hooks, called over distribution by tests/support/mimnode.py: hold extra fds, write
%% log lines as MongooseIM and ranch write them, report the node's own status.
-module(mim_hooks).
-behaviour(gen_server).

-export([start_link/0]).
-export([open_fds/1, exhaust_fds/1, close_fds/0, log/3, log_emfile_storm/1, status/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

%% Events sent to the disk_log handler between two filesyncs: below its drop_mode_qlen, so a
%% storm is never thinned out by overload protection and tests can count every line.
-define(SYNC_EVERY, 500).

start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% Opens N more sockets (one fd and one port each); stops at the first error, e.g. emfile.
-spec open_fds(non_neg_integer()) -> {ok, non_neg_integer()} | {error, term(), non_neg_integer()}.
open_fds(N) when is_integer(N), N >= 0 ->
    gen_server:call(?MODULE, {open_fds, N}, infinity).

%% Opens sockets until emfile and closes those after HoldMs. The release has to come from
%% inside: while the node is out of fds it cannot accept a distribution connection either.
-spec exhaust_fds(non_neg_integer()) -> {error, term(), non_neg_integer()}.
exhaust_fds(HoldMs) when is_integer(HoldMs), HoldMs >= 0 ->
    gen_server:call(?MODULE, {exhaust_fds, HoldMs}, infinity).

-spec close_fds() -> {ok, non_neg_integer()}.
close_fds() ->
    gen_server:call(?MODULE, close_fds, infinity).

%% A structured event as MongooseIM's ?LOG_* macros emit it, flushed to disk on return.
-spec log(logger:level(), atom(), map()) -> ok.
log(Level, What, Fields) when is_atom(What), is_map(Fields) ->
    ?LOG(Level, Fields#{what => What}),
    filesync().

-spec log_emfile_storm(non_neg_integer()) -> ok.
log_emfile_storm(N) when is_integer(N), N >= 0 ->
    emit(N),
    filesync().

-spec status() -> starting | started | stopping.
status() ->
    case {init:get_status(), lists:keymember(mim_node, 1, application:which_applications())} of
        {{started, _}, true} -> started;
        {{stopping, _}, _} -> stopping;
        _ -> starting
    end.

emit(0) ->
    ok;
emit(N) ->
    Batch = min(N, ?SYNC_EVERY),
    [mim_listener:log_emfile() || _ <- lists:seq(1, Batch)],
    filesync(),
    emit(N - Batch).

filesync() ->
    _ = logger_disk_log_h:filesync(disk_log),
    ok.

init([]) ->
    {ok, []}.

handle_call({open_fds, N}, _From, Held) ->
    case open(N, Held) of
        {ok, Held1} -> {reply, {ok, length(Held1)}, Held1};
        {error, Reason, Held1} -> {reply, {error, Reason, length(Held1)}, Held1}
    end;
handle_call({exhaust_fds, HoldMs}, _From, Held) ->
    {error, Reason, Held1} = open(infinity, []),
    erlang:send_after(HoldMs, self(), {close, Held1}),
    {reply, {error, Reason, length(Held1)}, Held1 ++ Held};
handle_call(close_fds, _From, Held) ->
    {reply, {ok, close(Held)}, []}.

handle_cast(_Msg, Held) ->
    {noreply, Held}.

handle_info({close, Sockets}, Held) ->
    close(Sockets),
    {noreply, Held -- Sockets}.

close(Held) ->
    lists:foreach(fun gen_udp:close/1, Held),
    length(Held).

open(0, Held) ->
    {ok, Held};
open(N, Held) ->
    case gen_udp:open(0, [{ip, {127, 0, 0, 1}}]) of
        {ok, Socket} when N =:= infinity -> open(N, [Socket | Held]);
        {ok, Socket} -> open(N - 1, [Socket | Held]);
        {error, Reason} -> {error, Reason, Held}
    end.
