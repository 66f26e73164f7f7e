# dns_poll.exs: DNS clustering as Phoenix's DNSCluster (the dns_cluster Hex package that `mix phx.new` sets up)
# and libcluster's Cluster.Strategy.DNSPoll do it, written with nothing but OTP and Elixir's standard library
# (Hex packages are not needed to run it; a Phoenix app uses the real DNSCluster instead, see README.md).
#
# The strategy: every few seconds, ask the DNS for the A and AAAA records of one name (DNS_CLUSTER_QUERY: the
# headless Service pgcluster-operator writes with spec.output.service, whose addresses are the cluster's
# peers), and call Node.connect/1 on <own basename>@<address> for every address that is not this node and not
# connected yet. Every node behind the name must therefore be named <basename>@<its IP> with the same basename.
# Nothing is ever disconnected because it left the answer: a node that stops closes its connections itself.
#
# Start it with a long name, <basename>@<pod IP>, and the cluster's cookie:
#
#     DNS_CLUSTER_QUERY=hello-peers elixir --name "hello@$POD_IP" --cookie "$RELEASE_COOKIE" dns_poll.exs
#
# DNS_CLUSTER_QUERY may be the Service's short name: the resolver (:inet_res, as DNSCluster uses) completes it
# with the pod's resolv.conf search list (<namespace>.svc.<cluster domain> first). POLL_MS sets the interval
# (default 5000, DNSCluster's). It prints one line per event, each starting with the Unix time in ms:
#
#     <ms> resolved <ip,ip,...>      the answer changed (sorted; empty: no address, or no answer)
#     <ms> connected <node>          a distribution connection came up (nodeup)
#     <ms> disconnected <node>       it went down (nodedown)
#     <ms> nodes <a,b,...>           Node.list() after every connect or disconnect
#     <ms> warning <text>            e.g. its own address is not in the answer after 30 s
#     <ms> stopping ...              SIGTERM: it exits at once (every connection closes together)
defmodule DNSPoll do
  @connect_timeout_ms 10_000

  def run do
    query = System.get_env("DNS_CLUSTER_QUERY", "")
    interval = env_int("POLL_MS", 5_000)
    grace_ms = env_int("OWN_ADDRESS_GRACE_MS", 30_000)

    cond do
      node() == :nonode@nohost ->
        log("warning this node is not distributed: start it with elixir --name <basename>@$POD_IP --cookie ...")
        System.halt(1)

      query == "" ->
        log("warning DNS_CLUSTER_QUERY is not set: set it to the name of the PgCluster's Service (spec.output.service)")
        System.halt(1)

      true ->
        :ok
    end

    [basename, host] = node() |> Atom.to_string() |> String.split("@", parts: 2)
    :ok = :net_kernel.monitor_nodes(true)
    # On SIGTERM, leave at once: the VM exits and every connection closes together, so the others see this
    # node go now rather than one connection after another.
    {:ok, _} = System.trap_signal(:sigterm, fn ->
      log("stopping: leaving #{length(Node.list())} nodes")
      System.halt(0)
    end)

    log("started #{node()} resolving #{query} every #{interval} ms")
    for n <- Node.list(), do: log("connected #{n}")
    report()
    send(self(), :poll)

    loop(%{
      query: query, interval: interval, basename: basename, host: host, grace_ms: grace_ms,
      started: now(), warned: false, ips: nil
    })
  end

  defp loop(s) do
    receive do
      :poll ->
        s = poll(s)
        Process.send_after(self(), :poll, s.interval)
        loop(s)

      {:nodeup, n} ->
        log("connected #{n}")
        report()
        loop(s)

      {:nodedown, n} ->
        log("disconnected #{n}")
        report()
        loop(s)
    end
  end

  defp poll(s) do
    ips = resolve(s.query)
    if ips != s.ips, do: log("resolved #{Enum.join(ips, ",")}")
    s = check_own_address(%{s | ips: ips})

    # Every address not connected yet, dialled at once; the next poll waits for them (as DNSCluster's does),
    # an unreachable one at most the connect timeout.
    connected = MapSet.new(Node.list())

    ips
    |> Enum.map(&String.to_atom("#{s.basename}@#{&1}"))
    |> Enum.reject(&(&1 == node() or MapSet.member?(connected, &1)))
    |> Task.async_stream(&Node.connect/1,
      timeout: @connect_timeout_ms, on_timeout: :kill_task, max_concurrency: max(1, length(ips)))
    |> Stream.run()

    s
  end

  # A and AAAA records of the query, as strings, sorted; a failed lookup (NXDOMAIN, no server) is no address.
  defp resolve(query) do
    for type <- [:a, :aaaa],
        {:ok, {:hostent, _name, _aliases, _type, _len, addresses}} <- [:inet_res.getbyname(String.to_charlist(query), type)],
        address <- addresses do
      address |> :inet.ntoa() |> to_string()
    end
    |> Enum.uniq()
    |> Enum.sort()
  end

  # The classic failures: the query names another Service (or none), or the node is not named <basename>@<IP>.
  defp check_own_address(%{warned: false} = s) do
    if s.host not in s.ips and now() - s.started > s.grace_ms do
      log("warning #{s.host} (this node's host) is not in the answer for #{s.query} after #{div(s.grace_ms, 1000)} s: " <>
            "it answers [#{Enum.join(s.ips, ",")}]. Set DNS_CLUSTER_QUERY to the PgCluster's Service " <>
            "(spec.output.service) and start the node as <basename>@<pod IP>, the name the operator publishes")
      %{s | warned: true}
    else
      s
    end
  end

  defp check_own_address(s), do: s

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

DNSPoll.run()
