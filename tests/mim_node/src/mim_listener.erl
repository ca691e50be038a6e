%% A TCP listener standing in for a MongooseIM ranch listener: it accepts on 127.0.0.1 and
%% holds every connection open until the peer closes it, so each client costs the node one fd.
-module(mim_listener).

-export([start_link/2, init/3]).
-export([log_emfile/0]).

start_link(Name, Port) ->
    proc_lib:start_link(?MODULE, init, [self(), Name, Port]).

init(Parent, Name, Port) ->
    Opts = [binary, {ip, {127, 0, 0, 1}}, {active, false}, {reuseaddr, true}, {backlog, 1024}],
    case gen_tcp:listen(Port, Opts) of
        {ok, LSocket} ->
            proc_lib:init_ack(Parent, {ok, self()}),
            accept_loop(LSocket);
        {error, Reason} ->
            proc_lib:init_ack(Parent, {error, {listen, Name, Port, Reason}})
    end.

accept_loop(LSocket) ->
    case gen_tcp:accept(LSocket) of
        {ok, Socket} ->
            Holder = spawn_link(fun() -> receive go -> hold(Socket) end end),
            ok = gen_tcp:controlling_process(Socket, Holder),
            Holder ! go;
        %% What ranch's acceptor does on emfile, so a node out of fds logs a real storm.
        {error, emfile} ->
            log_emfile(),
            receive after 100 -> ok end;
        {error, closed} ->
            exit(closed);
        {error, _} ->
            ok
    end,
    accept_loop(LSocket).

hold(Socket) ->
    case gen_tcp:recv(Socket, 0) of
        {ok, _} -> hold(Socket);
        {error, _} -> gen_tcp:close(Socket)
    end.

%% Ranch 2 logs through `Logger:warning(Format, Args)`: a format string without location
%% metadata, so MongooseIM's formatter prints it as `at=: unstructured_log="..."`.
log_emfile() ->
    logger:warning("Ranch acceptor reducing accept rate: out of file descriptors~n", []).
