%% MongooseIM's default logfmt line: flatlog with mongoose_flatlog_formatter's template and
%% mongoose_log_filter's lifting of well-known report fields into the fixed prefix:
%%   when=... level=... [what=] [reason=] [pid=] at=M:F/A:LINE [user=] ... [text=] k=v ...\n
%% Format-string messages become `unstructured_log="..."`. Written from those projects'
%% behaviour, not copied; the agent's log parser is tested against what this produces.
-module(mim_log_formatter).

-export([format/2]).

%% Report keys MongooseIM moves into the line prefix (mongoose_flatlog_formatter:fields/0).
-define(LIFTED, [what, text, user, from_jid, to_jid, class, reason, stacktrace]).

-spec format(logger:log_event(), logger:formatter_config()) -> unicode:chardata().
format(Event, Config) ->
    try
        line(Event, Config)
    catch
        %% A crashing formatter would log its own crash and spiral; emit a plain line instead.
        Class:Reason ->
            line(#{level => error, meta => maps:get(meta, Event, #{}),
                   msg => {report, #{what => log_format_failed, class => Class,
                                     reason => Reason}}}, Config)
    end.

line(#{level := Level, msg := Msg, meta := Meta}, Config) ->
    Report = report(Msg),
    M = maps:merge(format_stacktrace(maps:with(?LIFTED, Report)), Meta),
    Depth = maps:get(map_depth, Config, 3),
    ["when=", timestamp(M), " level=", atom_to_list(Level),
     optional(" what=", what, M, Config), optional(" reason=", reason, M, Config),
     optional(" pid=", pid, M, Config),
     " at=", mfa(M), ":", optional("", line, M, Config),
     optional(" user=", user, M, Config), optional(" from_jid=", from_jid, M, Config),
     optional(" to_jid=", to_jid, M, Config), optional(" stacktrace=", stacktrace, M, Config),
     optional(" text=", text, M, Config), " ",
     fields("", maps:without(?LIFTED, Report), Depth, Config), "\n"].

report({report, Map}) when is_map(Map) -> Map;
report({report, List}) when is_list(List) -> maps:from_list(List);
report({string, String}) -> #{unstructured_log => unicode:characters_to_binary(String)};
report({Format, Args}) -> #{unstructured_log => unicode:characters_to_binary(io_lib:format(Format, Args))}.

timestamp(#{time := Time}) ->
    calendar:system_time_to_rfc3339(Time, [{unit, microsecond}, {offset, 0}]);
timestamp(_) ->
    "".

mfa(#{mfa := {M, F, A}}) when is_integer(A) ->
    [atom_to_list(M), $:, atom_to_list(F), $/, integer_to_list(A)];
mfa(_) ->
    "".

optional(Prefix, Key, Meta, Config) ->
    case Meta of
        #{Key := Value} -> [Prefix, value(Value, Config)];
        _ -> ""
    end.

%% Nested maps flatten to parent_child=value down to map_depth, then `parent=...`. Keys come
%% out in reverse of map order, as flatlog's fold leaves them.
fields(Prefix, _Map, 0, _Config) ->
    [string:trim(Prefix, trailing, "_"), "=... "];
fields(Prefix, Map, Depth, Config) ->
    maps:fold(
      fun(K, V, Acc) when is_map(V) ->
              [fields([Prefix, value(K, Config), "_"], V, Depth - 1, Config) | Acc];
         (K, V, Acc) ->
              [Prefix, value(K, Config), $=, value(V, Config), $\s | Acc]
      end, [], Map).

value(X, _) when is_atom(X) -> quote(atom_to_list(X));
value(X, _) when is_integer(X) -> integer_to_list(X);
value(X, _) when is_pid(X) -> pid_to_list(X);
value(X, _) when is_reference(X) -> ref_to_list(X);
value(X, Config) when is_binary(X) ->
    case unicode:characters_to_list(X) of
        List when is_list(List) -> printable_or_term(List, X, Config);
        _ -> quote(term(X, Config))
    end;
value(X, Config) when is_list(X) -> printable_or_term(X, X, Config);
value(X, Config) -> quote(term(X, Config)).

printable_or_term(List, Original, Config) ->
    case io_lib:printable_list(List) of
        true -> quote(List);
        false -> quote(term(Original, Config))
    end.

term(X, Config) ->
    case maps:get(term_depth, Config, undefined) of
        undefined -> io_lib:format("~0tp", [X]);
        Depth -> io_lib:format("~0tP", [X, Depth])
    end.

%% logfmt quoting: escape when the value holds a quote, backslash or newline; otherwise
%% quote only when it holds a space or '='.
quote(Chars) ->
    Str = unicode:characters_to_list(Chars),
    case lists:any(fun(C) -> lists:member(C, "\"\\\n") end, Str) of
        true -> [$", escape(Str), $"];
        false ->
            case lists:any(fun(C) -> C =:= $\s orelse C =:= $= end, Str) of
                true -> [$", Str, $"];
                false -> Str
            end
    end.

escape([]) -> [];
escape([$\r, $\n | Rest]) -> [$\\, $r, $\\, $n | escape(Rest)];
escape([$\n | Rest]) -> [$\\, $n | escape(Rest)];
escape([$" | Rest]) -> [$\\, $" | escape(Rest)];
escape([$\\ | Rest]) -> [$\\, $\\ | escape(Rest)];
escape([C | Rest]) -> [C | escape(Rest)].

%% mongoose_log_filter prints stacktraces as "m:f/a:line m:f/a:line ...".
format_stacktrace(#{stacktrace := [_ | _] = Stack} = Fields) ->
    Frames = [frame(F) || F <- Stack],
    Fields#{stacktrace => iolist_to_binary(lists:join(" ", Frames))};
format_stacktrace(Fields) ->
    Fields.

frame({M, F, A, Info}) when is_list(A) -> frame({M, F, length(A), Info});
frame({M, F, A, Info}) -> io_lib:format("~p:~p/~p:~p", [M, F, A, proplists:get_value(line, Info, 0)]);
frame(Other) -> io_lib:format("~p", [Other]).
