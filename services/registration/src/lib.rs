//! The registration service: cafe admin approvals (bookings) and registrations (entry passes).
