# peer_watch.exs: a BEAM app clustered by pgcluster-operator, with nothing but OTP and Elixir's standard
# library (no Hex packages, no libcluster, no database credentials, no Kubernetes RBAC).
#
# Start it with a long name that is exactly what the operator publishes for this pod (nodeName.mode ip:
# <basename>@<pod IP>) and the cluster's cookie, from a Secret:
#
#     elixir --name "demo@$POD_IP" --cookie "$RELEASE_COOKIE" peer_watch.exs
#
# It polls the peers files the kubelet mounts into the pod (PEERS_FILES, comma-separated, default
# /etc/pgcluster/peers/peers,/etc/pgcluster/annotation/peers: the ConfigMap's `peers` file, one name per line,
# and the downward-API file of the pod's pgcluster.io/peers annotation, comma-separated; a missing file
# counts as empty), takes the union of the names (the kubelet refreshes the two files separately, and either
# can lag: see the README), calls Node.connect/1 for every name that is not itself, and prints one line per
# event, each starting with the Unix time in ms:
#
#     <ms> seen <node>           the name appeared in the file
#     <ms> gone <node>           the name left the file
#     <ms> connected <node>      a distribution connection came up (nodeup)
#     <ms> disconnected <node>   it went down (nodedown)
#     <ms> nodes <a,b,...>       Node.list() after every connect or disconnect
#     <ms> warning <text>        e.g. its own name is not in the file (wrong basename, short names)
#     <ms> stopping ...          SIGTERM: it exits at once (every connection closes together)
#
# A peer that cannot be reached is retried every second, without blocking the others or crashing.
defmodule PeerWatch do
  @retry_ms 1_000

  def run do
    file = System.get_env("PEERS_FILES", "/etc/pgcluster/peers/peers,/etc/pgcluster/annotation/peers")
    poll_ms = env_int("POLL_MS", 200)
    grace_ms = env_int("OWN_NAME_GRACE_MS", 30_000)

    if node() == :nonode@nohost do
      log("warning this node is not distributed: start it with elixir --name <basename>@$POD_IP --cookie ...")
      System.halt(1)
    end

    :ok = :net_kernel.monitor_nodes(true)
    # On SIGTERM (the pod is deleted), leave at once: the VM exits and every connection closes together, so
    # the peers see nodedown now rather than after the VM's default shutdown (seconds). Not one disconnect
    # after another: with OTP 25+'s global (prevent_overlapping_partitions), peers that lose this node at
    # different moments would disconnect from each other.
    {:ok, _} = System.trap_signal(:sigterm, fn ->
      log("stopping: leaving #{length(Node.list())} nodes")
      System.halt(0)
    end)
    log("started #{node()} reading #{file} every #{poll_ms} ms")
    # Peers that found this node before the monitor above existed (its name was published once the VM was
    # up): their nodeup is not sent again, so report them now.
    for n <- Node.list(), do: log("connected #{n}")
    report()
    send(self(), :poll)

    loop(%{
      file: file, poll_ms: poll_ms, grace_ms: grace_ms, started: now(), warned: false,
      peers: MapSet.new(), connecting: MapSet.new(), retry_at: %{}
    })
  end

  defp loop(s) do
    receive do
      :poll ->
        s = poll(s)
        Process.send_after(self(), :poll, s.poll_ms)
        loop(s)

      {:nodeup, n} ->
        log("connected #{n}")
        report()
        loop(s)

      {:nodedown, n} ->
        log("disconnected #{n}")
        report()
        loop(s)

      {:connect_result, n, ok} ->
        retry_at = if ok, do: Map.delete(s.retry_at, n), else: Map.put(s.retry_at, n, now() + @retry_ms)
        loop(%{s | connecting: MapSet.delete(s.connecting, n), retry_at: retry_at})
    end
  end

  defp poll(s) do
    names = read(s.file)
    for n <- MapSet.difference(names, s.peers), do: log("seen #{n}")
    for n <- MapSet.difference(s.peers, names), do: log("gone #{n}")
    s = check_own_name(s, names)

    # Connect in the background: an unreachable host takes seconds to fail, and must not hold up the rest.
    t = now()
    connected = MapSet.new(Node.list())
    due =
      Enum.filter(names, fn n ->
        n != node() and not MapSet.member?(connected, n) and not MapSet.member?(s.connecting, n) and
          Map.get(s.retry_at, n, 0) <= t
      end)

    parent = self()
    for n <- due, do: spawn(fn -> send(parent, {:connect_result, n, Node.connect(n) == true}) end)
    %{s | peers: names, connecting: MapSet.union(s.connecting, MapSet.new(due))}
  end

  # The classic failure: the app's node name differs from the one the operator publishes for its pod.
  defp check_own_name(%{warned: false} = s, names) do
    if not MapSet.member?(names, node()) and now() - s.started > s.grace_ms do
      log("warning #{node()} is not in #{s.file} after #{div(s.grace_ms, 1000)} s: " <>
            "the file lists #{Enum.join(names, ",")}. Start the node with --name set to exactly the name " <>
            "the operator publishes for this pod (<basename>@<pod IP> with nodeName.mode ip; a long name, not --sname)")
      %{s | warned: true}
    else
      s
    end
  end

  defp check_own_name(s, _names), do: s

  # The union of the files' names (comma- or newline-separated); a missing or empty file adds nothing (the
  # pod may start before the operator has written anything).
  defp read(files) do
    files
    |> String.split(",", trim: true)
    |> Enum.flat_map(fn file ->
      case File.read(String.trim(file)) do
        {:ok, text} -> String.split(text, [",", "\n"], trim: true)
        {:error, _} -> []
      end
    end)
    |> Enum.map(&String.trim/1)
    # A node name has an "@"; the annotation's version (podAnnotationFormat: version) has none: skipped.
    |> Enum.filter(&String.contains?(&1, "@"))
    |> Enum.map(&String.to_atom/1)
    |> MapSet.new()
  end

  defp report, do: log("nodes #{Node.list() |> Enum.map(&Atom.to_string/1) |> Enum.sort() |> Enum.join(",")}")
  defp log(line), do: IO.puts("#{now()} #{line}")
  defp now, do: System.os_time(:millisecond)

  defp env_int(name, default) do
    case Integer.parse(System.get_env(name, "")) do
      {n, ""} when n > 0 -> n
      _ -> default
    end
  end
end

PeerWatch.run()
