//! The pool's behaviour, end to end: one test binary whose modules are each named after the
//! behaviour they pin (`cargo nextest run -p pool-server -E 'test(/^MODULE::/)'` runs one).
//! One binary rather than one per file: each test binary links the whole pool, and linking
//! some thirty of them took a large part of a CI run.

mod common;

mod a_new_node_fetches_nothing_below_the_minimum_chain_work;
mod a_payout_the_node_answers_late_is_paid_once;
mod a_share_is_credited_once_per_tip;
mod a_stranger_cannot_fill_a_node_for_free;
mod a_worker_page_says_how_sure_its_numbers_are;
mod an_address_account_proves_itself_by_signing;
mod an_honest_network_keeps_one_chain_under_attack;
mod behind_a_load_balancer_bans_and_caps_see_the_miner;
mod blocks_extend_the_chain;
mod carried_balances_are_paid_once;
mod coinbase_payouts_pay_each_account_in_the_block;
mod command_line_answers_like_a_tool;
mod config_file_and_env;
mod config_values_cannot_break_a_session;
mod dashboard_pages_ten_thousand_workers;
mod database_outage_loses_no_share;
mod difficulty_changes_reissue_distinct_work;
mod edges_never_hand_out_the_same_extranonce1;
mod hostile_miners_are_bounded;
mod http_clients_cannot_hold_descriptors;
mod miners_hear_about_their_rigs;
mod miners_move_between_edges_and_keep_their_session;
mod mines_on_a_real_node;
mod node_template_shapes;
mod operating_the_pool;
mod payouts_reach_each_address_once;
mod peers_that_misbehave_are_banned;
mod pools_form_one_network;
mod pools_started_apart_share_a_genesis;
mod public_reads_share_one_snapshot;
mod readme_commands_run;
mod rewards_are_the_same_however_shares_were_stored;
mod rewards_follow_the_work_and_the_chain;
mod sessions_resume_with_their_subscription_id;
mod share_history_is_summarised_and_ages_out;
mod spool_survives_torn_writes_and_a_full_disk;
mod stock_miners_settle_and_are_measured_truly;
mod store_keeps_every_share;
mod store_never_stalls_stratum;
mod store_sets_aside_rows_the_database_refuses;
mod stratum_answers_every_share_kind;
mod stratum_speaks_tls_on_the_same_port;
mod survives_faults_under_load;
mod three_edges_behind_haproxy_keep_every_miner_and_share;
mod vardiff_settles_for_every_client_kind;
mod vardiff_steers_share_rate;
mod worker_numbers_survive_restarts_and_span_pools;
