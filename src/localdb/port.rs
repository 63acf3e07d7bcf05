//! Choosing the cluster's port. It is kept across restarts (the writers hold it in their
//! connection settings), so it should lie below Linux's ephemeral range (32768..60999 by
//! default): an outgoing connection, even a writer reconnecting to the dead port, can be given
//! an ephemeral port as its own and then holds it, and the restart fails with "Address already
//! in use" until it lets go.

use std::net::TcpListener;

/// The first port of `first`, `first + 1`, ... (`count` in all) that is free on 127.0.0.1 now.
pub fn free_port(first: u16, count: u16) -> Option<u16> {
    (0..count)
        .map_while(|n| first.checked_add(n))
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_skips_a_taken_one() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        assert_eq!(free_port(port, 1), None);
        assert_eq!(free_port(port, 0), None);
        let next = free_port(port, 50).unwrap();
        assert!(next > port && next < port + 50, "{next}");
        assert_eq!(free_port(u16::MAX, 5), free_port(u16::MAX, 1));
    }
}
