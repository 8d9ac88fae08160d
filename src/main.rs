//! The `gattway` binary: parses the command line, loads the configuration, opens
//! the radio and runs the subcommand.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use gattway::ble::{open_backend, open_radios, ScanFilter};
use std::sync::Arc;

use gattway::app::{self, AppState};
use gattway::auth::{Authenticator, Scope};
use gattway::cli::{Cli, Command, ProfileCommand, ScanArgs, TokenArgs};
use gattway::config::{Config, LogFormat};
use gattway::gateway::{DeviceInfo, Gateway, RadioSpec};
use gattway::mcp::McpSettings;
use gattway::metrics::Metrics;
use gattway::profiles::ProfileSet;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory;
        clap_complete::generate(shell, &mut Cli::command(), "gattway", &mut std::io::stdout());
        return Ok(());
    }
    if let Command::Profile(ProfileCommand::Check { file }) = &cli.command {
        match gattway::profiles::Profile::from_file(file) {
            Ok(profile) => {
                print!("{}", profile.summary(&gattway::ble::sim::catalog::builtin()));
                return Ok(());
            }
            Err(e) => {
                eprintln!("invalid profile: {e}");
                std::process::exit(1);
            }
        }
    }
    let loaded = Config::load(cli.config.as_deref(), std::env::vars())?;
    let mut config = loaded.config;
    cli.apply(&mut config);
    if let Command::Doctor { json } = cli.command {
        let checks = gattway::doctor::run(&config);
        let failed = checks.iter().any(|c| c.status == gattway::doctor::Status::Fail);
        if json {
            println!("{}", serde_json::json!({"ok": !failed, "checks": checks}));
        } else {
            print!("{}", gattway::doctor::render(&checks));
        }
        std::process::exit(i32::from(failed));
    }
    let filter = EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("invalid log level {:?}", config.log_level))?;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    // Colours only for a person at a terminal: in a pipe or a file they are
    // escape codes that every reader (grep, journald, a CI log) has to strip.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    for var in &loaded.unknown_env {
        tracing::warn!(%var, "environment variable names no config key; ignored");
    }
    if let Command::Token(args) = &cli.command {
        return token(&config, args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli.command, config))
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    // One registry for the process: the gateway, the hub and every front end record
    // into it, and /metrics renders it.
    let metrics = Arc::new(Metrics::new());
    let gateway = if config.radios.is_empty() {
        let backend = open_backend(config.backend, &config.adapter, &config.sim).await?;
        Gateway::new(backend, config.gateway.clone(), metrics)?
    } else {
        let backends = open_radios(&config.radios, &config.sim).await?;
        let radios = config
            .radios
            .iter()
            .zip(backends)
            .map(|(r, backend)| RadioSpec {
                name: r.name.clone(),
                backend,
                slots: r.slots,
            })
            .collect();
        Gateway::with_radios(radios, config.gateway.clone(), metrics)?
    };
    gateway.set_advert_keys(
        gattway::adverts::Keys::new(&config.bthome, &config.xiaomi).map_err(anyhow::Error::msg)?,
    );
    let result = match command {
        Command::Scan(args) => scan(&gateway, args).await,
        Command::Serve(_) => serve(&gateway, &config).await,
        Command::Token(_) | Command::Completions { .. } | Command::Doctor { .. } | Command::Profile(_) => {
            Ok(())
        }
        Command::Mcp => {
            let profiles = ProfileSet::load(config.mcp.profiles_dir())?;
            let settings = McpSettings::new(&config.mcp, gateway.is_simulated(), "stdio", Arc::new(profiles));
            tracing::info!(writes_enabled = settings.writes_enabled, "serving MCP on stdio");
            gattway::mcp::serve_stdio(gateway.clone(), settings)
                .await
                .map_err(anyhow::Error::from)
        }
    };
    gateway.shutdown().await;
    result
}

async fn scan(gateway: &Gateway, args: ScanArgs) -> anyhow::Result<()> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    let filter = ScanFilter {
        name_prefix: args.name,
        services: args.services,
        min_rssi: args.min_rssi,
    };
    let devices = gateway
        .scan(filter, Duration::from_secs_f64(args.timeout))
        .await?
        .collect()
        .await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
    } else {
        print_table(&devices);
    }
    Ok(())
}

fn print_table(devices: &[DeviceInfo]) {
    println!("{:<20} {:>5}  {:<20} SERVICES", "ID", "RSSI", "NAME");
    for d in devices {
        let services: Vec<String> = d
            .services
            .iter()
            .map(|u| match u.name() {
                Some(n) => format!("{} ({n})", u.short()),
                None => u.short(),
            })
            .collect();
        println!(
            "{:<20} {:>5}  {:<20} {}",
            d.id,
            d.rssi,
            d.name.as_deref().unwrap_or("-"),
            services.join(", ")
        );
    }
    println!("{} device(s)", devices.len());
}

/// `gattway token`: a JWT signed with the configured secret, or a new API key.
fn token(config: &Config, args: &TokenArgs) -> anyhow::Result<()> {
    let scopes = args
        .scope
        .iter()
        .map(|s| {
            Scope::parse(s).with_context(|| {
                format!("unknown scope {s:?}: use ble:read, ble:write, ble:admin, hub:device or hub:client")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.api_key {
        let (key, hash) = gattway::auth::new_api_key();
        let quoted = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        let scope_list: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        println!("API key (give it to the client; it is not stored anywhere):\n  {key}\n");
        println!(
            "Add to the config file:\n[[auth.api_keys]]\nname = {:?}\nsha256 = \"{hash}\"\nscopes = [{}]",
            args.subject,
            quoted(&scope_list)
        );
        if !args.devices.is_empty() {
            println!("devices = [{}]", quoted(&args.devices));
        }
        return Ok(());
    }
    let ttl = humantime::parse_duration(&args.ttl)
        .with_context(|| format!("--ttl {:?}: expected e.g. 1h, 30m, 7d", args.ttl))?;
    let audience = Some(config.auth.jwt_audience.trim()).filter(|a| !a.is_empty());
    let issuer = Some(config.auth.jwt_issuer.trim()).filter(|i| !i.is_empty());
    let jwt = gattway::auth::issue_jwt(
        &config.auth.jwt_secret,
        &gattway::auth::TokenRequest {
            subject: &args.subject,
            scopes: &scopes,
            devices: &args.devices,
            ttl,
            audience,
            issuer,
        },
    )
    .map_err(anyhow::Error::msg)?;
    println!("{jwt}");
    Ok(())
}

async fn serve(gateway: &Gateway, config: &Config) -> anyhow::Result<()> {
    config.check_exposure()?;
    let auth = Arc::new(Authenticator::new(&config.auth).map_err(anyhow::Error::msg)?);
    // Tokens from an authorisation server need its keys; until the JWKS is fetched
    // they are refused, and fetching goes on behind this.
    if let Err(e) = auth.start().await {
        tracing::error!(error = %e, "auth.jwks_url: the signing keys could not be fetched; retrying");
    }
    let _insecure_warning = (!config.listen.ip().is_loopback() && !auth.enabled()).then(|| {
        let listen = config.listen;
        gattway::sync::AbortOnDrop(tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                tracing::warn!(%listen, "serving WITHOUT authentication on a non-loopback address (--insecure-no-auth): anyone who can reach it controls this Bluetooth radio");
            }
        }))
    });
    let database = config.database_url()?;
    // What is logged or said in an error never carries the password.
    let shown = gattway::redact::url(&database);
    if config.cluster.enabled()
        && !(database.starts_with("postgres://") || database.starts_with("postgresql://"))
    {
        anyhow::bail!(
            "cluster.nats is set, but the database is {shown}: the instances of a cluster share one \
             PostgreSQL database (--database postgres://USER@HOST/DATABASE on every instance)"
        );
    }
    tracing::info!(database = %shown, "hub database at {shown}");
    let store = gattway::store::open(&database)
        .await
        .with_context(|| format!("cannot open the hub database {shown}"))?;
    let hub = gattway::hub::Hub::start(store, gateway, auth.clone(), config.hub.clone(), &config.cluster)
        .await
        .context("cannot start the device hub")?;
    let _mqtt = gattway::mqtt::spawn(&hub, gateway, &config.mqtt)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = gateway.backend_name(), "listening on http://{addr} (MCP at http://{addr}/mcp, bridge at ws://{addr}/, hub at ws://{addr}/hub)");
    let state = AppState::with_control(
        gateway.clone(),
        config.mcp.clone(),
        config.bridge.clone(),
        config.control.clone(),
        auth,
    )
    .with_http(config.http.clone())
    .with_websocket(&config.websocket)
    .with_hub(hub)
    .with_profiles(ProfileSet::load(config.mcp.profiles_dir())?);
    let stopping = tokio_util::sync::CancellationToken::new();
    let _esphome = match config.esphome.listen_addr()? {
        Some(at) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot serve the ESPHome API on {at}"))?;
            let addr = listener.local_addr()?;
            let encrypted = !config.esphome.noise_psk.trim().is_empty();
            tracing::info!(%addr, encrypted, "ESPHome Bluetooth proxy on {addr}");
            let serving = gattway::esphome_proxy::serve(
                listener,
                gateway.clone(),
                config.esphome.clone(),
                stopping.clone(),
            );
            Some(gattway::sync::AbortOnDrop(tokio::spawn(async move {
                if let Err(e) = serving.await {
                    tracing::error!(error = %e, "the ESPHome proxy stopped");
                }
            })))
        }
        None => None,
    };
    let stop = stopping.clone();
    app::serve(listener, state, async move {
        shutdown_signal().await;
        stop.cancel();
    })
    .await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
